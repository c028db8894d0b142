// Package dpkg finds the Debian and Ubuntu packages dpkg installed, with their
// source packages, and the files each package owns.
//
// It reads var/lib/dpkg/status (one deb822 stanza per package), the
// var/lib/dpkg/status.d/ directory distroless images carry instead (one or
// more stanzas per file, no Status field), the var/lib/dpkg/info/*.list files
// (the files each package installed) and the status.d/*.md5sums files that
// replace them in distroless images. Ownership lets the scan tell that a
// Python or Java package was installed by the distribution and must be
// matched through the distribution's advisories, which are written against
// source packages: hence SourceName and SourceVersion, from the "Source:"
// field ("Source: openssl" on libssl3; "Source: bash (5.2.15-2)" when a
// binNMU gave the binary another version).
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package dpkg
