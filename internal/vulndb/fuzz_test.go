package vulndb

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

func addSeedFiles(f *testing.F, yaml bool, paths ...string) {
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, yaml)
	}
}

// FuzzParseOSV feeds arbitrary JSON and YAML to the OSV parser and, when a
// record comes out, through the index builder and the matcher: no input
// may panic, and what parses must compile and open.
func FuzzParseOSV(f *testing.F) {
	addSeedFiles(f, false, "go-vulndb/GO-2022-1059.json", "go-vulndb/GO-2024-2887.json", "go-vulndb/GO-2020-0009.json",
		"go-platform/GO-2024-2961.json", "ghsa/GHSA-hmfx-3pcx-653p.json",
		"rustsec/RUSTSEC-2018-0003.json", "almalinux/advisories/almalinux8/ALSA-2021:2363.json")
	addSeedFiles(f, true, "pypa/vulns/urllib3/PYSEC-2023-192.yaml", "pypa/vulns/aiohttp/PYSEC-2022-43059.yaml")
	f.Add([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1:0"},{"last_affected":"1:2~b"}]}],"versions":["1:1"]}]}`), false)
	f.Add([]byte("a: &a [x]\nb: [*a, *a]\nid: X-1\nmodified: 2024-01-01T00:00:00Z\n"), true)
	f.Add([]byte("id: X-1\nmodified: 2024-01-01\naffected: [{package: {ecosystem: npm, name: n}, ranges: [{type: SEMVER, events: [{introduced: 0}, {fixed: 1.0.0}]}]}]"), true)
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		r, withdrawn, err := parseOSV(data, yaml, "")
		if err != nil || withdrawn {
			return
		}
		img, err := buildIndex([]*sourceData{{Status: SourceStatus{Name: "fuzz"}, Records: []*record{r}}}, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("parsed record does not compile: %v", err)
		}
		ix, err := parseIndex(img, true)
		if err != nil {
			t.Fatalf("built index does not open: %v", err)
		}
		db := &DB{ix: ix, log: slog.New(slog.DiscardHandler), unmap: func() error { return nil }}
		var pkgs []inventory.Package
		for _, a := range r.Affected {
			for _, v := range []string{"0", "1.0.0", "1:1.0-1"} {
				pkgs = append(pkgs, inventory.Package{Name: a.Name, Version: v, Ecosystem: a.Ecosystem})
			}
			// A package of a binary: platform and functions known.
			pkgs = append(pkgs, inventory.Package{Name: a.Name, Version: "0", Ecosystem: a.Ecosystem,
				Platform: "windows/amd64", Symbols: fuzzSymbols(a)})
		}
		if _, err := db.Match(context.Background(), pkgs); err != nil {
			t.Fatalf("match on a built index: %v", err)
		}
	})
}

// FuzzOpenIndex opens arbitrary bytes as an index (without the checksum,
// so the structure checks are what is exercised) and matches against it:
// corrupt indexes must give errors, never panics or unbounded allocation.
func FuzzOpenIndex(f *testing.F) {
	var srcs []*sourceData
	for _, p := range []string{"rustsec/RUSTSEC-2021-0003.json", "go-vulndb/GO-2024-2887.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		r, _, err := parseOSV(data, false, "")
		if err != nil {
			f.Fatal(err)
		}
		srcs = append(srcs, &sourceData{Status: SourceStatus{Name: filepath.Dir(p)}, Records: []*record{r}})
	}
	img, err := buildIndex(srcs, time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(img)
	f.Add(img[:headerSize])
	f.Add(img[:len(img)/2])
	f.Add([]byte(indexMagic))
	var b inventory.SymbolsBuilder
	b.Add("net/netip", "Addr", "Is4In6")
	b.AddModule("stdlib")
	pkgs := []inventory.Package{
		{Name: "smallvec", Version: "1.0.0", Ecosystem: "crates.io"},
		{Name: "stdlib", Version: "go1.22.0", Ecosystem: "Go"},
		{Name: "stdlib", Version: "go1.22.0", Ecosystem: "Go", Platform: "linux/amd64", Symbols: b.Build()},
		{Name: "x", Version: "1", Ecosystem: "npm"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parseIndex(data, true)
		ix, err := parseIndex(data, false)
		if err != nil {
			return
		}
		db := &DB{ix: ix, log: slog.New(slog.DiscardHandler), unmap: func() error { return nil }}
		db.Status()
		db.Match(context.Background(), pkgs)
	})
}

// FuzzNPMRange: any range string compiles or errors, without panics.
func FuzzNPMRange(f *testing.F) {
	for _, s := range []string{"<1.6.5 || < 2.1.7 > 2.0.0", "2.0.x || 2.1.x", "^0.0.3", "1.2.3 - 2.3", "~>1.2", ">=1.0.0-beta.1 <=2", "*", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ivs, err := npmRangeIntervals(s)
		if err == nil {
			npmFixes(ivs, ivs)
		}
	})
}

// FuzzParseFormats feeds arbitrary bytes to the parsers of the other
// published formats (nodejs security-wg, Alpine secdb, CISA KEV, CVE 5,
// EPSS): errors are fine, panics are not.
func FuzzParseFormats(f *testing.F) {
	for kind, p := range []string{"nodejs/vuln/npm/49.json", "alpine/v3.10/main.yaml", "cisa-kev-subset.json", "cve5/CVE-2024-24790.json", "epss/epss_scores-sample.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", p))
		if err != nil {
			f.Fatal(err)
		}
		if len(data) > 8<<10 {
			data = data[:8<<10] // keep seeds small; truncation is itself a useful seed
		}
		f.Add(uint8(kind), data)
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		switch kind % 5 {
		case 0:
			parseNodeJSWG(data)
		case 1:
			if fixes, _, err := parseAlpineSecdb(data); err == nil {
				alpineRecords(fixes)
			}
		case 2:
			parseKEV(data)
		case 3:
			parseCVE5(data)
		case 4:
			parseEPSS(bytes.NewReader(data))
		}
	})
}

// fuzzSymbols is a function set holding the first symbol of each import of
// a, so matching walks the symbol and package paths.
func fuzzSymbols(a affected) *inventory.Symbols {
	var b inventory.SymbolsBuilder
	for _, imp := range a.Imports {
		sym := "f"
		if len(imp.Symbols) > 0 {
			sym = imp.Symbols[0]
		}
		b.Add(imp.Path, "", sym)
	}
	b.AddModule(a.Name)
	return b.Build()
}
