// Package rpm finds the packages rpm installed (RHEL, AlmaLinux, Rocky,
// CentOS, Fedora, SUSE, Azure Linux...), with their source RPMs and the files
// each package owns.
//
// rpm keeps its database in one of three formats, all read here from memory:
//
//   - Berkeley DB hash ("Packages", RHEL/CentOS ≤ 8, older SUSE),
//   - NDB ("Packages.db", SUSE 15),
//   - SQLite ("rpmdb.sqlite", RHEL/AlmaLinux/Rocky 9+, Fedora 33+),
//
// under var/lib/rpm/ or usr/lib/sysimage/rpm/. Each holds one rpm header
// blob per installed package; header.go decodes the few tags needed.
//
// Why not github.com/knqyf263/go-rpmdb, the library the field uses? It
// opens databases by file path only (an image is streamed from memory, so
// each database would go through a temporary file), and on hostile input it
// is unsafe in ways a caller cannot contain: its Berkeley DB reader loops
// forever on an overflow-page chain that meets a non-overflow page, indexes
// past page bounds, allocates blob lengths read from the file (up to 4 GiB
// from a few bytes of NDB), prints to stdout, and leaks a goroutine and a
// file descriptor whenever listing fails — all inside goroutines, where no
// recover() can reach. The readers here follow the same formats (and the
// same rpm sources go-rpmdb cites) with every offset, length and page chain
// checked, and the tests compare their output package by package with
// go-rpmdb's on the real databases in testdata/, so the formats are read
// the same way. SQLite files are read with modernc.org/sqlite (pure Go, the
// driver the project already uses) through its read-only fs.FS VFS, so no
// format needs a file on disk.
//
// Versions are written the way OSV's RPM ecosystems (AlmaLinux, Rocky Linux,
// Red Hat) write them: "EPOCH:VERSION-RELEASE", without the epoch when it is
// 0 or absent ("1:3.0.7-27.el9", "5.1.8-6.el9").
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package rpm
