package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/report"
	"github.com/bulwark-security/bulwark/internal/sbom"
	"github.com/bulwark-security/bulwark/internal/scan"
)

// reportResult is the report package's fixed result: an AlmaLinux image
// with rpm, PyPI, Go, cargo and npm packages.
func reportResult(t testing.TB) *scan.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "report", "testdata", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res scan.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func renderSBOM(t testing.TB, res *scan.Result, f report.Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := report.Write(context.Background(), &buf, res, f, report.Options{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReportRoundTrip: what `bulwark scan --format cyclonedx|spdx` writes,
// `bulwark scan sbom` reads back as the same inventory.
func TestReportRoundTrip(t *testing.T) {
	res := reportResult(t)
	cases := []struct {
		format    report.Format
		extractor string
		// SPDX has no field for these; CycloneDX keeps them as properties.
		ignore []string
	}{
		{report.FormatCycloneDX, sbom.ExtractorCycloneDX, nil},
		{report.FormatSPDX, sbom.ExtractorSPDX, []string{"Indirect", "Dev"}},
	}
	for _, c := range cases {
		t.Run(string(c.format), func(t *testing.T) {
			d, err := sbom.Decode(bytes.NewReader(renderSBOM(t, res, c.format)))
			if err != nil {
				t.Fatal(err)
			}
			want := make([]inventory.Package, len(res.Packages))
			copy(want, res.Packages)
			for i := range want {
				want[i].Extractor = c.extractor
			}
			opts := []cmp.Option{cmpopts.EquateEmpty(), cmpopts.IgnoreFields(inventory.Package{}, c.ignore...)}
			if diff := cmp.Diff(want, d.Packages, opts...); diff != "" {
				t.Errorf("packages changed in the round trip (-want +got):\n%s", diff)
			}
			wantOS := *res.OS
			if c.format == report.FormatSPDX {
				wantOS.Codename, wantOS.CPEName = "", "" // no SPDX field for them
			}
			if diff := cmp.Diff(&wantOS, d.OS); diff != "" {
				t.Errorf("OS changed in the round trip (-want +got):\n%s", diff)
			}
			if d.Subject == nil || d.Subject.Name != res.Target.Name {
				t.Errorf("subject %+v, want the image %s", d.Subject, res.Target.Name)
			}
			if len(d.Skipped) != 0 || len(d.Warnings) != 0 {
				t.Errorf("skipped %v, warnings %v", d.Skipped, d.Warnings)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	// A 2,000-package image SBOM as Bulwark writes it, and a real npm one.
	base := reportResult(b)
	res := *base
	res.Packages = nil
	res.Findings = nil
	res.Suppressed = nil
	for i := 0; len(res.Packages) < 2000; i++ {
		p := base.Packages[i%len(base.Packages)]
		p.Name = fmt.Sprintf("%s-%d", p.Name, i)
		p.PURL = fmt.Sprintf("pkg:%s/%s@%s", p.Type, p.Name, p.Version)
		res.Packages = append(res.Packages, p)
	}
	npm, err := os.ReadFile(filepath.Join("testdata", "cyclonedx-npm-1.6.cdx.json"))
	if err != nil {
		b.Fatal(err)
	}
	inputs := []struct {
		name string
		data []byte
	}{
		{"cyclonedx-2000", renderSBOM(b, &res, report.FormatCycloneDX)},
		{"spdx-2000", renderSBOM(b, &res, report.FormatSPDX)},
		{"cyclonedx-npm", npm},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				d, err := sbom.Decode(bytes.NewReader(in.data))
				if err != nil || len(d.Packages) == 0 {
					b.Fatal(err)
				}
			}
		})
	}
}
