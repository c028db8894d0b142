// Package image opens container images and walks their filesystems.
//
// It is the only part of Bulwark that reads image bytes. Open resolves a
// reference — a registry reference, "docker-archive:PATH[:TAG]",
// "oci-archive:PATH[:NAME]" or "oci-layout:DIR[:NAME]" — to one image for one
// platform, validating its manifest and config on the way. Walk then reads
// each layer once, as a stream, never unpacked to disk: it decompresses the
// blob itself (gzip, zstd or plain tar, told apart by magic bytes), verifies
// its digest while reading, applies whiteouts, opaque directories and
// overwrites exactly like a container runtime stacks layers, and hands only
// the files a caller asked for to an extract function. WalkDir does the same
// for a directory through os.Root, so nothing outside the directory is ever
// opened.
//
// Everything read is bounded (manifest and config size, decompressed bytes per
// layer and in total, number of entries, size of a file buffered for random
// access), because images are outside data: a hostile image must fail fast
// with an error naming the input, never exhaust the machine, and never make a
// path outside the image root appear in the results.
//
// The package knows nothing about packages or vulnerabilities: callers pass
// the required/extract functions (internal/scan passes internal/inventory's
// extractors). It must not import internal/vulndb or internal/scan; it may
// import internal/inventory only for the shared Input and FileInfo types.
package image
