package vulndb

import "time"

// Status describes a database: what it holds and how old it is.
type Status struct {
	Dir string `json:"dir"`
	// SchemaVersion of the on-disk format.
	SchemaVersion int `json:"schemaVersion"`
	// Built is when the index was last written.
	Built           time.Time      `json:"built"`
	Vulnerabilities int            `json:"vulnerabilities"`
	Sources         []SourceStatus `json:"sources"`
}

// SourceStatus describes one imported source.
type SourceStatus struct {
	// Name identifies the source ("go-vulndb", "rustsec", "pypa", "cisa-kev"...).
	Name string `json:"name"`
	// Origin is the path or URL it was imported from.
	Origin    string `json:"origin"`
	Format    string `json:"format"` // "osv", "cisa-kev", "cve5", ...
	Records   int    `json:"records"`
	Withdrawn int    `json:"withdrawn,omitempty"`
	Skipped   int    `json:"skipped,omitempty"` // malformed records, with errors logged
	// Errors holds the first few errors behind Skipped, each naming the
	// file and the record, so "db status" can show why.
	Errors   []string  `json:"errors,omitempty"`
	Imported time.Time `json:"imported"`
	// Newest is the newest "modified" time among its records: how fresh the
	// data is, as opposed to when it was imported.
	Newest time.Time `json:"newest,omitzero"`
}
