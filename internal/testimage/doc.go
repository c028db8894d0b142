// Package testimage builds real container images for Bulwark's integration
// tests, benchmarks and the bundled demo, and caches them on disk.
//
// The images are made of real parts, because a scanner tested on synthetic
// layers only learns to read synthetic layers: Go programs built with an old
// toolchain against old, vulnerable module versions; a Debian bookworm root
// filesystem from debootstrap with real packages installed by apt in a chroot;
// node_modules from a real npm install of old package versions. Layers are
// written from the resulting directory trees (modes, symlinks, hard links and
// OCI whiteouts preserved), and each image is written with
// go-containerregistry as a docker-archive (docker save), an OCI image layout
// and an OCI archive.
//
// Builds take from seconds (Go, npm) to minutes (debootstrap), so each image
// is cached under a directory keyed by a hash of its recipe — the recipe's
// version, its source files and its parameters — and rebuilt only when the
// recipe changes. Concurrent test processes share the cache safely: a build
// runs under a per-image file lock, in a temporary directory that is renamed
// into place when complete.
//
// Tests call Path or Get, which skip the test with a clear message when a
// build requirement (root, debootstrap, npm, the network) is missing, unless
// BULWARK_TESTIMAGE_REQUIRE=1 is set, as CI does, to turn the skip into a
// failure. Build is usable outside tests (cmd/build-testimages pre-builds
// everything; cmd/gen-demo regenerates internal/demo/data).
//
// This package is test support: production code must not import it, and it
// must not import any other Bulwark package, so that the packages it feeds
// can import it from their tests without import cycles.
package testimage
