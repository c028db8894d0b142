#!/bin/sh
# Rebuilds the committed Go binaries from the sources in src/. Needs the Go
# command and the Go module proxy (old toolchains are fetched through
# GOTOOLCHAIN). The outputs are deterministic for a given toolchain.
set -eu
cd "$(dirname "$0")"
build() { # toolchain srcdir output [ldflags]
	(cd "src/$2" && GOTOOLCHAIN="$1" CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-buildvcs=false \
		go build -trimpath -ldflags="${4:--s -w}" -o "../../$3" .)
}
build go1.21.0 vulnapp vulnapp-go1.21.0-linux-amd64
build go1.22rc1 hello hello-go1.22rc1-linux-amd64
# The same program with its ELF symbol table (no DWARF): govulncheck reads
# symbols only from binaries that keep it, so the comparison with
# govulncheck at symbol level needs one.
build go1.21.0 vulnapp vulnapp-go1.21.0-linux-amd64-symtab -w
# A 5 KB ELF holding only the build info section of vulnapp: the seed of
# FuzzGoBinary (debug/buildinfo reads it like the whole binary).
objcopy -j .go.buildinfo vulnapp-go1.21.0-linux-amd64 vulnapp-buildinfo-only.elf 2>/dev/null
