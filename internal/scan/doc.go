// Package scan runs a scan end to end: it walks a target (an image's layers
// through internal/image, a directory, or an SBOM), hands each file to the
// extractors that asked for it (internal/inventory), assembles the inventory
// (OS, packages, which language packages the OS package manager installed),
// and matches it against the vulnerability database (internal/vulndb).
//
// It holds no parser of its own; rendering and the policy gate live in
// internal/report and internal/suppress.
package scan
