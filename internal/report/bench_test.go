package report

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// bigResult scales the committed fixture up to a large image: 2,000
// packages and 500 findings, each package and vulnerability a renamed copy
// of a real one from testdata/result.json.
func bigResult(b *testing.B) *scan.Result {
	base := loadResult(b)
	res := *base
	res.Packages = nil
	res.Findings = nil
	for i := 0; len(res.Packages) < 2000; i++ {
		p := base.Packages[i%len(base.Packages)]
		p.Name = fmt.Sprintf("%s-%d", p.Name, i)
		p.PURL = fmt.Sprintf("pkg:%s/%s@%s", p.Type, p.Name, p.Version)
		p.Location = fmt.Sprintf("%s/%d", p.Location, i)
		res.Packages = append(res.Packages, p)
	}
	for i := 0; len(res.Findings) < 500; i++ {
		f := base.Findings[i%len(base.Findings)]
		v := *f.Vulnerability
		v.ID = fmt.Sprintf("%s-%d", v.ID, i/3) // three packages per vulnerability
		f.Vulnerability = &v
		f.Match.Package = (i * 4) % len(res.Packages)
		f.Package = res.Packages[f.Match.Package]
		res.Findings = append(res.Findings, f)
	}
	return &res
}

func BenchmarkWrite(b *testing.B) {
	res := bigResult(b)
	for _, c := range []struct {
		name   string
		format Format
		opts   Options
	}{
		{"table", FormatTable, Options{Width: 160}},
		{"table-color-packages", FormatTable, Options{Color: true, ListPackages: true}},
		{"json", FormatJSON, Options{}},
		{"sarif", FormatSARIF, Options{}},
		{"cyclonedx", FormatCycloneDX, Options{}},
		{"spdx", FormatSPDX, Options{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Write(context.Background(), io.Discard, res, c.format, c.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
