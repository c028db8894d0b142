// Package rustbinary finds the crates compiled into Rust executables built
// with cargo-auditable (https://github.com/rust-secure-code/cargo-auditable),
// which embeds the dependency tree as zlib-compressed JSON in a `.dep-v0`
// section. Ubuntu and several distributions and vendors build their Rust
// packages with it; plain `cargo build` binaries carry no such section and
// yield nothing.
//
// Only ELF executables are read (the images Bulwark scans are Linux); PE,
// Mach-O and WebAssembly carry the same section but are not supported.
//
// Crates from crates.io get ecosystem "crates.io" and a cargo PURL. Crates
// from git, a local path or another registry are reported with an empty
// Ecosystem and no PURL: a same-named crates.io advisory says nothing about
// them, and a PURL would claim they came from crates.io.
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package rustbinary
