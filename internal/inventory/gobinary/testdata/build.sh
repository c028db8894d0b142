#!/bin/sh
# Rebuilds the committed Go binaries from the sources in src/. Needs the Go
# command and the Go module proxy (old toolchains are fetched through
# GOTOOLCHAIN). The outputs are deterministic for a given toolchain.
set -eu
cd "$(dirname "$0")"
build() { # toolchain srcdir output
	(cd "src/$2" && GOTOOLCHAIN="$1" CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-buildvcs=false \
		go build -trimpath -ldflags='-s -w' -o "../../$3" .)
}
build go1.21.0 vulnapp vulnapp-go1.21.0-linux-amd64
build go1.22rc1 hello hello-go1.22rc1-linux-amd64
# A 5 KB ELF holding only the build info section of vulnapp: the seed of
# FuzzGoBinary (debug/buildinfo reads it like the whole binary).
objcopy -j .go.buildinfo vulnapp-go1.21.0-linux-amd64 vulnapp-buildinfo-only.elf 2>/dev/null
