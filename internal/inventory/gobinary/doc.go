// Package gobinary finds the Go modules and the Go standard library version
// compiled into Go executables, from the build information the Go linker
// embeds in every binary (stdlib debug/buildinfo, the same data
// `go version -m` prints and govulncheck reads).
//
// Versions are stored the way OSV records from go-vulndb write them, so the
// matcher compares them verbatim with osv-scalibr/semantic: module versions
// without the leading "v" ("0.3.7", "0.0.0-20220722155237-a158d28d115b"), the
// standard library as package "stdlib" with the Go release turned into
// semantic versioning ("go1.21.3" → "1.21.3", "go1.22rc1" → "1.22.0-rc.1").
// PURLs keep Go's own spelling with the "v"
// ("pkg:golang/golang.org/x/text@v0.3.7", "pkg:golang/stdlib@v1.21.3"), as
// syft and trivy write them for modules; a reader of a golang PURL strips
// the "v" to get the OSV version.
//
// Each package also carries the binary's platform (Package.Platform, from
// the GOOS and GOARCH build settings) and its functions (Package.Symbols,
// from the pclntab's function name table, which `-ldflags='-s -w'` keeps):
// the matcher uses them to skip advisories for other platforms and to say
// whether the vulnerable functions are in the binary, as govulncheck does.
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package gobinary
