// Package osrelease detects the operating system of a scanned root and turns
// it into the names advisories use.
//
// The extractor reads os-release(5) (etc/os-release, else usr/lib/os-release)
// and, for roots that lack it, the older release files: etc/alpine-release,
// etc/debian_version and the Red Hat family's etc/redhat-release,
// etc/almalinux-release, etc/rocky-release and etc/centos-release. Each file
// yields its own OS; the scan keeps the best one (os-release first), so this
// package never has to see two files at once.
//
// Ecosystem maps an OS to the OSV ecosystem its packages are matched in
// ("Debian:12", "Ubuntu:22.04:LTS", "Alpine:v3.18", "AlmaLinux:9"), following
// the OSV schema's list of ecosystems; PURL and FinalizePURL build the
// package URLs of OS packages once the OS is known ("distro=debian-12"). The
// dpkg, apk and rpm extractors use PURL at extract time, when the OS is not
// known yet, and the scan calls FinalizePURL after the walk.
//
// This package parses only the Input it is handed. It must not import
// internal/vulndb, internal/scan or anything that opens files.
package osrelease
