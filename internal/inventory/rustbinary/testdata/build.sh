#!/bin/sh
# Builds rustapp-linux-amd64: a real Rust executable (rustc, stripped) to
# which objcopy adds a `.dep-v0` section holding src/dep-v0.json,
# zlib-compressed, exactly as cargo-auditable embeds its dependency list.
# cargo-auditable itself cannot be installed here (crates.io is not
# reachable), and the crates listed are not compiled in: the section is what
# the extractor reads, and it is byte-for-byte in cargo-auditable's format.
# Needs rustc, python3 (for zlib) and binutils' objcopy.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rustc --edition 2021 -C opt-level=z -C strip=symbols -C panic=abort -C codegen-units=1 -C lto \
	-o "$tmp/rustapp" src/main.rs
# The JSON is a single line; cargo-auditable writes it without the newline.
python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(open(sys.argv[1], "rb").read().rstrip(b"\n"), 9))' \
	src/dep-v0.json >"$tmp/dep-v0.zlib"
objcopy --add-section .dep-v0="$tmp/dep-v0.zlib" --set-section-flags .dep-v0=readonly,contents \
	"$tmp/rustapp" rustapp-linux-amd64
# A 1 KB ELF holding only the .dep-v0 section: the seed of FuzzCargoAuditable.
objcopy -j .dep-v0 rustapp-linux-amd64 dep-v0-only.elf 2>/dev/null
