package scan

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/package-url/packageurl-go"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/sbom"
)

// SBOM builds a result from an SBOM's packages, so it can be matched and
// reported like a scan. name is how the SBOM was given (a path or "-").
func (s *Scanner) SBOM(ctx context.Context, name string, r io.Reader) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := sbom.Decode(r)
	if err != nil {
		return nil, fmt.Errorf("sbom %s: %w", name, err)
	}
	res := s.newResult("sbom", name)
	res.Tool.Extractors = map[string]int{"sbom/" + string(d.Format): 1}
	res.OS = d.OS
	if d.Subject != nil {
		res.Target.Digest = subjectDigest(d.Subject.PURL)
	}
	for _, p := range d.Packages {
		if p.Location == "" {
			p.Location = name
		}
		// Go PURLs carry the module version with its "v"; the inventory
		// stores it without, as OSV records and the Go binary extractor
		// write it, so an SBOM of an image reports what the image scan does.
		if p.Type == inventory.TypeGolang {
			p.Version = strings.TrimPrefix(p.Version, "v")
		}
		res.Packages = append(res.Packages, p)
	}
	// Skipped components are summarised, not listed one by one: an SBOM
	// with many components without PURLs would drown the report.
	if n := len(d.Skipped); n > 0 {
		ex := d.Skipped[0]
		res.Errors = append(res.Errors, FileError{Path: name, Extractor: "sbom",
			Error: fmt.Sprintf("%d component(s) not matched, e.g. %s %s: %s", n, ex.Name, ex.Version, ex.Reason)})
	}
	for _, w := range d.Warnings {
		res.Errors = append(res.Errors, FileError{Path: name, Extractor: "sbom", Error: w})
	}
	return res, nil
}

// subjectDigest takes the digest from an OCI PURL (pkg:oci/app@sha256%3A…).
func subjectDigest(purl string) string {
	p, err := packageurl.FromString(purl)
	if err != nil || p.Type != "oci" || !strings.HasPrefix(p.Version, "sha256:") {
		return ""
	}
	return p.Version
}
