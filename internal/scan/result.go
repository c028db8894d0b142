package scan

import (
	"time"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// SchemaVersion is the version of the JSON result schema (docs/json-schema.md).
// Bump it on any incompatible change.
const SchemaVersion = 1

// Result is everything one scan found. It is what `--format json` prints and
// what is uploaded to central.
type Result struct {
	SchemaVersion int                 `json:"schemaVersion"`
	Tool          Tool                `json:"tool"`
	Target        Target              `json:"target"`
	StartedAt     time.Time           `json:"startedAt"`
	FinishedAt    time.Time           `json:"finishedAt"`
	OS            *inventory.OS       `json:"os,omitempty"`
	Packages      []inventory.Package `json:"packages"`
	Findings      []Finding           `json:"findings"`
	// Suppressed are findings removed by an ignore file, a VEX statement or
	// --ignore-unfixed, kept so reports can say what was hidden and why.
	Suppressed []Finding `json:"suppressed,omitempty"`
	// Errors are per-file or per-extractor failures. The scan went on; the
	// inventory may be missing what those files held.
	Errors []FileError `json:"errors,omitempty"`
	// DB describes the vulnerability database the findings came from.
	DB *vulndb.Status `json:"db,omitempty"`
}

// Tool names the scanner and the versions of its parts that shaped the result.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Extractors maps extractor name to its version (stored results are
	// re-evaluated when one changes).
	Extractors map[string]int `json:"extractors,omitempty"`
}

// Target is what was scanned.
type Target struct {
	// Kind is "image", "fs" or "sbom".
	Kind string `json:"kind"`
	// Name is the reference or path as the user gave it.
	Name string `json:"name"`
	// Digest is the image manifest digest (images only).
	Digest   string   `json:"digest,omitempty"`
	ImageID  string   `json:"imageId,omitempty"` // config digest
	Platform string   `json:"platform,omitempty"`
	RepoTags []string `json:"repoTags,omitempty"`
	Layers   []Layer  `json:"layers,omitempty"`
	// Size is the compressed size of all layers, in bytes.
	Size int64 `json:"size,omitempty"`
}

// Layer is one image layer.
type Layer struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diffId"`
	Size      int64  `json:"size"`
	CreatedBy string `json:"createdBy,omitempty"`
}

// Finding is one vulnerability in one package.
type Finding struct {
	vulndb.Match
	// Package is a copy of the affected package (Match.Package indexes
	// Result.Packages).
	Package inventory.Package `json:"package"`
	// Note explains how the match was made when that matters to the reader,
	// e.g. "matched through the Debian package python3-urllib3".
	Note string `json:"note,omitempty"`
	// Suppression says why a finding was suppressed (only in Result.Suppressed).
	Suppression *Suppression `json:"suppression,omitempty"`
}

// Suppression records why a finding is not reported.
type Suppression struct {
	// Kind is "ignore-file", "vex" or "unfixed".
	Kind   string `json:"kind"`
	Reason string `json:"reason,omitempty"`
	// Source is the file that suppressed it.
	Source  string    `json:"source,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
}

// FileError is a failure to read or parse one file or layer.
type FileError struct {
	Path      string `json:"path,omitempty"`
	Layer     string `json:"layer,omitempty"`
	Extractor string `json:"extractor,omitempty"`
	Error     string `json:"error"`
}
