package report

import (
	"bytes"
	"encoding/json"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
)

// writeJSON prints the Result as it is (docs/json-schema.md). The only
// change is that "packages" and "findings" are always arrays, never null, so
// consumers can iterate without a nil check.
func writeJSON(buf *bytes.Buffer, res *scan.Result) error {
	r := *res
	if r.Packages == nil {
		r.Packages = []inventory.Package{}
	}
	if r.Findings == nil {
		r.Findings = []scan.Finding{}
	}
	enc := json.NewEncoder(buf)
	enc.SetIndent("", "  ")
	// Advisory text is full of "<" and "&"; escaping them helps no consumer
	// of a file and makes it unreadable.
	enc.SetEscapeHTML(false)
	return enc.Encode(&r)
}
