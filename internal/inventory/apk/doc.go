// Package apk finds the Alpine packages apk installed, with their origin
// (source) packages, and the files each package owns.
//
// It reads apk's installed database, lib/apk/db/installed (usr/lib/apk/db/
// on merged-/usr systems): one paragraph of "X:value" lines per package,
// where P is the name, V the version, A the architecture, o the origin
// (the aport the package was built from, which Alpine's advisories name), L
// the license, and F/R lines the directories and the files in them the
// package installed. Ownership lets the scan tell that a Python package was
// installed by apk and must be matched through Alpine's advisories.
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package apk
