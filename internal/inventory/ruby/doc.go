// Package ruby finds RubyGems packages: installed gems from the
// specifications RubyGems writes for each of them
// (<gem home>/specifications/*.gemspec and specifications/default/*.gemspec
// for the default gems bundled with Ruby, "language/ruby/gemspec"), and the
// gems a Bundler project locked (Gemfile.lock, "language/ruby/gemfilelock").
//
// Installed gemspecs are Ruby code. They are never evaluated: RubyGems
// writes them in one fixed shape (`s.name = "rake".freeze`,
// `s.version = "13.0.6"`, `s.licenses = ["MIT".freeze]`), and this package
// reads those assignments with a small literal parser that accepts the
// string forms RubyGems has used over the years ("x", 'x', %q{x},
// Gem::Version.new("x")) and rejects anything computed (interpolation,
// method calls). The "# stub: name version platform" comment RubyGems puts
// on line 2 is the fallback.
//
// From Gemfile.lock only the GEM sections are read (gems from a rubygems
// source; GIT and PATH gems are the project's own or forks, which registry
// advisories do not describe). Package.Indirect is set for gems not listed
// under DEPENDENCIES. Bundler does not record groups in the lock file, so
// Dev is never set. A Gemfile.lock inside an installed gem's directory
// (gems/<name>-<version>/Gemfile.lock, bundler/gems/<name>-<rev>/…) is
// that gem's own development lock file and is skipped, like lock files
// under node_modules.
//
// This package must not import internal/vulndb, and must not open files: it
// only reads the Input it is handed.
package ruby
