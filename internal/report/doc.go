// Package report renders a scan result (internal/scan.Result) in the formats
// `bulwark scan --format` offers: a human table, the result itself as JSON
// (schema in docs/json-schema.md), SARIF 2.1.0 for GitHub code scanning,
// CycloneDX 1.6 JSON and SPDX 2.3 JSON.
//
// Rendering is pure: the output depends only on the Result and the Options,
// never on the clock, the environment or the order of map iteration, so the
// same result always renders to the same bytes (the golden tests rely on it,
// and so do users who diff reports between pipeline runs). Identifiers that
// must be unique per document (CycloneDX serial number, SPDX namespace) are
// derived from the result's content for the same reason.
//
// It uses internal/scan, internal/inventory and internal/vulndb for their
// types only. It must not import internal/image, internal/cli or anything
// that does I/O beyond the io.Writer it is handed.
package report
