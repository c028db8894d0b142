// Package sbom reads software bills of materials for `bulwark scan sbom`:
// CycloneDX (JSON 1.2–1.7, XML 1.0–1.7) and SPDX (JSON and tag-value, 2.1–2.3).
// It turns every component that has a Package URL of a type Bulwark can
// match (deb, apk, rpm, golang, npm, pypi, maven, gem, cargo, nuget,
// composer) into an inventory.Package with the right OSV ecosystem, and the
// CycloneDX operating-system component (or SPDX OPERATING-SYSTEM package)
// into an inventory.OS.
//
// SBOMs are outside input: the whole document is bounded in size (256 MiB by
// default) and nesting depth before any parser sees it, and the third-party
// parsers (cyclonedx-go, spdx/tools-golang) run behind a recover so a bug in
// them becomes an error, not a crash.
//
// It imports internal/inventory (and its osrelease package, so OS releases
// map to ecosystems exactly as an image scan maps them). It must not import
// internal/scan, internal/vulndb or internal/report: the scan package calls
// Decode, and report's SBOM writers are tested against Decode, not the other
// way round.
package sbom
