package ruby

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
	"github.com/google/go-cmp/cmp"
)

func TestRequired(t *testing.T) {
	gs, gl := NewGemspec(), NewGemfileLock()
	tests := []struct {
		path         string
		gemspec, gfl bool
	}{
		{"usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec", true, false},
		{"usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec", true, false},
		{"usr/share/rubygems-integration/all/specifications/rake-13.0.6.gemspec", true, false},
		{"usr/local/bundle/specifications/rails-7.0.4.gemspec", true, false},
		{"specifications/x-1.gemspec", true, false},
		{"app/mygem.gemspec", false, false},
		{"usr/local/bundle/gems/rails-7.0.4/rails.gemspec", false, false},
		{"usr/lib/ruby/gems/3.1.0/specifications/other/x.gemspec", false, false},
		{"usr/lib/ruby/gems/3.1.0/specifications/rake.gemspec.bak", false, false},
		{"app/Gemfile.lock", false, true},
		{"Gemfile.lock", false, true},
		{"app/gems.locked", false, true},
		{"usr/local/bundle/gems/rails-7.0.4/Gemfile.lock", false, false},
		{"usr/local/bundle/bundler/gems/gitgem-13eebcaafafb/Gemfile.lock", false, false},
		{"gems/x/Gemfile.lock", false, false},
		{"app/Gemfile", false, false},
		{"app/Gemfile.lock.orig", false, false},
	}
	for _, tt := range tests {
		if got := gs.Required(tt.path, inventory.FileInfo{}); got != tt.gemspec {
			t.Errorf("Gemspec.Required(%q) = %v", tt.path, got)
		}
		if got := gl.Required(tt.path, inventory.FileInfo{}); got != tt.gfl {
			t.Errorf("GemfileLock.Required(%q) = %v", tt.path, got)
		}
	}
	var paths []string
	for _, tt := range tests {
		paths = append(paths, tt.path)
	}
	inventorytest.CheckRequiredNoAllocs(t, paths, gs, gl)
}

// TestInstalledGemspecs reads the gemspecs Debian 12's ruby3.1, rake,
// ruby-net-telnet, ruby-webrick and ruby-xmlrpc packages install.
func TestInstalledGemspecs(t *testing.T) {
	root := filepath.Join("testdata", "root")
	got := inventorytest.Walk(t, NewGemspec(), root)
	inventorytest.Golden(t, "gemspecs", got)

	// RubyGems names each spec file after the gem's full name: every
	// package must match its file name, and every file must give one.
	var files int
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".gemspec") {
			files++
		}
		return err
	})
	if len(got) != files {
		t.Errorf("%d packages from %d gemspecs", len(got), files)
	}
	for _, p := range got {
		if want := p.Name + "-" + p.Version + ".gemspec"; filepath.Base(p.Location) != want {
			t.Errorf("%s: got %s %s", p.Location, p.Name, p.Version)
		}
		if p.Type != inventory.TypeGem || p.Ecosystem != inventory.EcosystemRubyGems || p.PURL != "pkg:gem/"+p.Name+"@"+p.Version {
			t.Errorf("identity fields: %+v", p)
		}
	}
	byName := make(map[string]inventory.Package)
	for _, p := range got {
		byName[p.Name+"@"+p.Location[:strings.Index(p.Location, "/")]] = p
	}
	for key, want := range map[string][]string{
		"rake@usr":  {"MIT"},
		"json@usr":  {"Ruby"},
		"uri@usr":   {"Ruby", "BSD-2-Clause"},
		"rexml@usr": {"BSD-2-Clause"},
	} {
		if diff := cmp.Diff(want, byName[key].Licenses); diff != "" {
			t.Errorf("%s licenses (-want +got):\n%s", key, diff)
		}
	}
}

// TestGemspecForms covers the literal forms RubyGems versions have written
// (the %q{} form is from RubyGems 1.x) and computed values that must not be
// mistaken for literals.
func TestGemspecForms(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // name@version, "" when extraction must fail
		licenses []string
	}{
		{"rubygems 3", "Gem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.licenses = [\"MIT\".freeze]\nend\n", "rake@13.0.6", []string{"MIT"}},
		{"rubygems 1.x", "# -*- encoding: utf-8 -*-\n\nGem::Specification.new do |s|\n  s.name = %q{rack}\n  s.version = \"1.1.0\"\n  s.license = %q{MIT}\nend\n", "rack@1.1.0", []string{"MIT"}},
		{"Gem::Version", "Gem::Specification.new do |spec|\n  spec.name = 'x'\n  spec.version = Gem::Version.new(\"1.2.3\")\nend\n", "x@1.2.3", nil},
		{"stub fallback", "# stub: nokogiri 1.13.10 x86_64-linux lib\nGem::Specification.new do |s|\n  s.name = NAME\n  s.version = VERSION\nend\n", "nokogiri@1.13.10", nil},
		{"computed", "Gem::Specification.new do |s|\n  s.name = \"a\" + suffix\n  s.version = \"#{v}\"\nend\n", "", nil},
		{"comparison is not assignment", "if s.name == \"a\"\n  s.version == \"1\"\nend\n", "", nil},
		{"escapes rejected", "s.name = \"a\\\"b\"\ns.version = \"1.0\"\n", "", nil},
		{"bad version", "s.name = \"a\"\ns.version = \"1.0; rm -rf\"\n", "", nil},
		{"crlf", "s.name = \"a\"\r\ns.version = \"1.0\"\r\n", "a@1.0", nil},
		{"empty", "", "", nil},
		{"binary", "\x00\xff\x00\n\x01", "", nil},
		{"giant files line", "s.name = \"a\"\n  s.files = [" + strings.Repeat("\"lib/x.rb\".freeze, ", 200000) + "]\ns.version = \"1.0\"\n", "a@1.0", nil},
		{"unterminated", "s.name = \"a\ns.version = %q{1.0\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := inventorytest.Extract(NewGemspec(), "specifications/x.gemspec", []byte(tt.in))
			if tt.want == "" {
				if err == nil {
					t.Fatalf("want an error, got %+v", o.Packages)
				}
				return
			}
			if err != nil || len(o.Packages) != 1 {
				t.Fatalf("got %+v, %v", o.Packages, err)
			}
			p := o.Packages[0]
			if got := p.Name + "@" + p.Version; got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if diff := cmp.Diff(tt.licenses, p.Licenses); diff != "" {
				t.Errorf("licenses (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGemfileLock reads a lock file Bundler 2.3.7 wrote (bundle install
// --local) for testdata/lockfiles/bundler-2.3.7/Gemfile, with a GIT and a
// PATH gem besides the GEM section.
func TestGemfileLock(t *testing.T) {
	got := inventorytest.Walk(t, NewGemfileLock(), filepath.Join("testdata", "lockfiles"))
	inventorytest.Golden(t, "gemfilelock", got)
	type row struct {
		Version  string
		Indirect bool
	}
	gotRows := make(map[string]row)
	for _, p := range got {
		gotRows[p.Name] = row{p.Version, p.Indirect}
		if p.Dev {
			t.Errorf("%s: Dev set, but Gemfile.lock does not record groups", p.Name)
		}
	}
	want := map[string]row{
		"digest": {"3.1.0", true}, "io-wait": {"0.2.1", true}, "minitest": {"5.15.0", false},
		"net-imap": {"0.2.3", false}, "net-protocol": {"0.1.2", true}, "power_assert": {"2.0.1", true},
		"rake": {"13.0.6", false}, "rexml": {"3.2.5", false}, "strscan": {"3.0.1", true},
		"test-unit": {"3.5.3", false}, "timeout": {"0.2.0", true}, "webrick": {"1.8.1", false},
	}
	if diff := cmp.Diff(want, gotRows); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestGemfileLockPlatforms uses the published format for platform-specific
// gems (hand-written: no platform gem can be installed offline here),
// behind a UTF-8 byte order mark.
func TestGemfileLockPlatforms(t *testing.T) {
	in := `GEM
  remote: https://rubygems.org/
  specs:
    nokogiri (1.13.10-arm64-darwin)
      racc (~> 1.4)
    nokogiri (1.13.10-x86_64-linux)
      racc (~> 1.4)
    racc (1.6.1)
    sqlite3 (1.5.4-x86_64-linux-musl)

PLATFORMS
  arm64-darwin-21
  x86_64-linux

DEPENDENCIES
  nokogiri (~> 1.13)
  sqlite3

RUBY VERSION
   ruby 3.1.2p20

BUNDLED WITH
   2.3.26
`
	o, err := inventorytest.Extract(NewGemfileLock(), "Gemfile.lock", []byte("\xef\xbb\xbf"+in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range o.Packages {
		got = append(got, p.PURL)
	}
	want := []string{"pkg:gem/nokogiri@1.13.10", "pkg:gem/racc@1.6.1", "pkg:gem/sqlite3@1.5.4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestHostileGemfileLock(t *testing.T) {
	// No input within bounds is an error for this format.
	inventorytest.RunHostile(t, NewGemfileLock(), "Gemfile.lock", []inventorytest.Case{
		{Name: "binary", In: "\x00\xff\nGEM\n  specs:\n    \x00 (1)\n"},
		{Name: "truncated", In: "GEM\n  remote: https://rubygems.org/\n  specs:\n    rake (13.0"},
		{Name: "giant line", In: "GEM\n  specs:\n    a (" + strings.Repeat("1", 4<<20) + ")\n"},
		{Name: "injection", In: "GEM\n  specs:\n    ../../etc (1.0)\n    a (1.0 || rm)\n    b ()\n    c (\n"},
		{Name: "no specs line", In: "GEM\n    rake (13.0.6)\n"},
	})
	in := inventorytest.Input("Gemfile.lock", make([]byte, MaxGemfileLockSize+1))
	in.Info.Size = 0 // the bound holds on the bytes streamed, too
	if _, err := NewGemfileLock().Extract(context.Background(), in); err == nil {
		t.Error("oversized lock file accepted")
	}
}

func FuzzGemspec(f *testing.F) {
	f.Add([]byte("# stub: json 2.6.1 ruby lib\n\nGem::Specification.new do |s|\n  s.name = \"json\".freeze\n  s.version = \"2.6.1\"\n  s.licenses = [\"Ruby\".freeze, \"BSD-2-Clause\".freeze]\nend\n"))
	f.Add([]byte("s.name = %q{a}\ns.version = Gem::Version.new('1.0')\ns.license = %Q(MIT)\n"))
	f.Add(inventorytest.ReadFile(f, "testdata/root/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := inventorytest.Fuzz(t, NewGemspec(), "specifications/x.gemspec", in)
		if err != nil {
			return
		}
		for _, p := range o.Packages {
			if !validName(p.Name) || !validVersion(p.Version) || len(p.Licenses) > 16 {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func FuzzGemfileLock(f *testing.F) {
	f.Add(inventorytest.ReadFile(f, "testdata/lockfiles/bundler-2.3.7/Gemfile.lock"))
	f.Add([]byte("GEM\n  specs:\n    a (1.0-java)\n\nDEPENDENCIES\n  a!\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := inventorytest.Fuzz(t, NewGemfileLock(), "Gemfile.lock", in)
		if err != nil {
			t.Fatal(err) // no input within bounds is an error for this format
		}
		for _, p := range o.Packages {
			if !validName(p.Name) || !validVersion(p.Version) || strings.Contains(p.Version, "-") {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func BenchmarkGemspec(b *testing.B) {
	inventorytest.BenchmarkWalk(b, NewGemspec(), filepath.Join("testdata", "root"))
}

func BenchmarkGemfileLock(b *testing.B) {
	data := inventorytest.ReadFile(b, "testdata/lockfiles/bundler-2.3.7/Gemfile.lock")
	inventorytest.Benchmark(b, NewGemfileLock(), "Gemfile.lock", data, func(out inventory.Output) bool { return len(out.Packages) > 0 })
}
