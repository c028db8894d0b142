package vulndb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

var update = flag.Bool("update", false, "regenerate testdata/bench-packages.json from the full real database")

// realInputs are every real database this package imports, as `bulwark db
// import` would be given them.
func realInputs(tb testing.TB) []string {
	var in []string
	for _, n := range []string{"rustsec-osv.zip", "pypa-advisory-database.zip", "almalinux-osv.zip", "nodejs-security-wg.zip",
		"alpine-secdb.zip", "cisa-kev.json", "cisa-vulnrichment-cve5.zip"} {
		in = append(in, sharedData(tb, n))
	}
	return append(in, goVulndb(tb))
}

var (
	fullOnce   sync.Once
	fullDir    string
	fullStatus []SourceStatus
	fullErr    error
)

// fullDB imports all the real data once per test process (about a minute
// on two cores). Set BULWARK_BENCH_DB_DIR to a directory holding such a
// database to reuse it across runs.
func fullDB(tb testing.TB) (string, []SourceStatus) {
	tb.Helper()
	if d := os.Getenv("BULWARK_BENCH_DB_DIR"); d != "" {
		db, err := Open(d, OpenOptions{})
		if err != nil {
			tb.Fatalf("BULWARK_BENCH_DB_DIR: %v", err)
		}
		defer db.Close()
		return d, db.Status().Sources
	}
	inputs := realInputs(tb)
	fullOnce.Do(func() {
		fullDir, fullErr = os.MkdirTemp("", "bulwark-vulndb-full-")
		if fullErr != nil {
			return
		}
		fullStatus, fullErr = Import(context.Background(), fullDir, inputs, ImportOptions{})
	})
	if fullErr != nil {
		tb.Fatal(fullErr)
	}
	return fullDir, fullStatus
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if fullDir != "" {
		os.RemoveAll(fullDir)
	}
	os.Exit(code)
}

func TestImportRealData(t *testing.T) {
	if testing.Short() {
		t.Skip("imports every real database (about a minute); skipped with -short")
	}
	dir, st := fullDB(t)
	// Counts from ../shared/vulndata/README.md, checked against the files:
	// withdrawn + records = the README's record count. AlmaLinux ships 43
	// advisories twice (identical copies under two releases): 5,680 files,
	// 5,637 advisories. Alpine: 2,479 IDs of which 6 are placeholders such
	// as "CVE-????-?????" (14 lines).
	want := []SourceStatus{
		{Name: "rustsec", Format: "osv", Records: 1193, Withdrawn: 13},
		{Name: "pypa", Format: "osv", Records: 2651, Withdrawn: 10},
		{Name: "almalinux", Format: "osv", Records: 5637},
		{Name: "nodejs-security-wg", Format: "nodejs-security-wg", Records: 467},
		{Name: "alpine-secdb", Format: "alpine-secdb", Records: 2473, Skipped: 14},
		{Name: "cisa-kev", Format: "cisa-kev", Records: 1404},
		{Name: "cve5", Format: "cve5", Records: 44026, Withdrawn: 104},
		{Name: "go-vulndb", Format: "osv", Records: 4771, Withdrawn: 18},
	}
	ignore := cmpopts.IgnoreFields(SourceStatus{}, "Origin", "Imported", "Newest", "Errors")
	if diff := cmp.Diff(want, st, ignore); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := db.Status().Vulnerabilities; n != 1193+2651+5637+467+2473+4771 {
		t.Errorf("%d vulnerabilities indexed", n)
	}
	// Known true positives, one per ecosystem, checked by hand in the records.
	cases := []struct {
		pkg     inventory.Package
		id      string
		withKEV bool
	}{
		{goMod("stdlib", "go1.22.0"), "GO-2024-2887", false},
		{goMod("golang.org/x/text", "v0.3.7"), "GO-2022-1059", false},
		{goMod("golang.org/x/net", "v0.16.0"), "GO-2023-2102", false},
		{inventory.Package{Name: "urllib3", Version: "1.26.4", Ecosystem: "PyPI"}, "PYSEC-2021-108", false},
		{inventory.Package{Name: "lodash", Version: "4.17.4", Ecosystem: "npm"}, "NSWG-ECO-368", false},
		{inventory.Package{Name: "smallvec", Version: "0.6.5", Ecosystem: "crates.io"}, "RUSTSEC-2021-0003", false},
		{inventory.Package{Name: "nginx-core", Version: "1:1.20.1-14.el9_2.1", Ecosystem: "AlmaLinux:9"}, "ALSA-2023:5711", true},
		{inventory.Package{Name: "libcrypto1.1", Version: "1.1.1c-r0", SourceName: "openssl", SourceVersion: "1.1.1c-r0", Ecosystem: "Alpine:v3.10"}, "CVE-2019-1547", false},
	}
	for _, tc := range cases {
		ms, err := db.Match(context.Background(), []inventory.Package{tc.pkg})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ms, func(m Match) bool { return m.Vulnerability.ID == tc.id })
		if i < 0 {
			t.Errorf("%s %s: %s not matched (got %d matches)", tc.pkg.Name, tc.pkg.Version, tc.id, len(ms))
			continue
		}
		if tc.withKEV && ms[i].Vulnerability.KEV == nil {
			t.Errorf("%s: no KEV entry", tc.id)
		}
	}
	// Enrichment at scale: Go records carry no CVSS, CISA's vectors fill it.
	ms, err := db.Match(context.Background(), []inventory.Package{goMod("stdlib", "go1.20.0")})
	if err != nil {
		t.Fatal(err)
	}
	withCVSS := 0
	for _, m := range ms {
		if len(m.Vulnerability.CVSS) > 0 {
			withCVSS++
		}
	}
	if len(ms) < 50 || withCVSS == 0 {
		t.Errorf("stdlib go1.20.0: %d matches, %d with CVSS", len(ms), withCVSS)
	}
}

// benchPackages is the committed package mix of BenchmarkMatch1000: 400
// real (ecosystem, name) pairs taken evenly from the full database, at
// versions from their own advisories, and 600 real names looked up where
// they do not exist (another ecosystem, or a suffixed name), the way most
// packages of an image have no advisory.
func benchPackages(tb testing.TB) []inventory.Package {
	p := filepath.Join("testdata", "bench-packages.json")
	if *update {
		dir, _ := fullDB(tb)
		db, err := Open(dir, OpenOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		defer db.Close()
		pkgs := generateBenchPackages(tb, db.ix)
		data, _ := json.MarshalIndent(pkgs, "", " ")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	var pkgs []inventory.Package
	if err := json.Unmarshal(data, &pkgs); err != nil {
		tb.Fatal(err)
	}
	return pkgs
}

func generateBenchPackages(tb testing.TB, ix *index) []inventory.Package {
	releases := map[string]string{"AlmaLinux": "AlmaLinux:9", "Alpine": "Alpine:v3.10"}
	var found []inventory.Package
	step := ix.nKeys / 400
	le := binary.LittleEndian
	for i := 0; i < ix.nKeys && len(found) < 400; i += step {
		k := ix.keys[i*keySize:]
		e, _ := readStr(ix.str, le.Uint32(k))
		n, _ := readStr(ix.str, le.Uint32(k[4:]))
		d := &dec{b: ix.data[le.Uint32(k[8:]):]}
		d.uvarint()
		d.uvarint()
		d.uvarint()
		version := "0.0.1"
		if d.count() > 0 {
			fl := d.byte()
			for _, bit := range []byte{ivLo, ivHi, ivFix} {
				if fl&bit != 0 {
					s := ix.transient(d.uvarint(), d)
					if bit == ivFix || (bit == ivLo && len(found)%2 == 0) {
						version = s
					}
				}
			}
		}
		eco := string(e)
		if r, ok := releases[eco]; ok {
			eco = r
		}
		found = append(found, inventory.Package{Name: string(n), Version: version, Ecosystem: eco})
	}
	out := slices.Clone(found)
	others := []string{"npm", "PyPI", "Go", "crates.io", "Maven", "RubyGems"}
	for i := 0; len(out) < 1000; i++ {
		f := found[i%len(found)]
		p := inventory.Package{Name: f.Name, Version: f.Version, Ecosystem: others[i%len(others)]}
		if p.Ecosystem == f.Ecosystem || i%3 == 0 {
			p.Name = fmt.Sprintf("%s-extras", f.Name)
			p.Ecosystem = f.Ecosystem
		}
		out = append(out, p)
	}
	return out
}

func BenchmarkOpen(b *testing.B) {
	dir, _ := fullDB(b)
	cpu := processCPU()
	for b.Loop() {
		db, err := Open(dir, OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	b.ReportMetric(float64(processCPU()-cpu)/1e6/float64(b.N), "cpu-ms/op")
}

func BenchmarkMatch1000(b *testing.B) {
	dir, _ := fullDB(b)
	pkgs := benchPackages(b)
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var ms []Match
	cpu := processCPU()
	for b.Loop() {
		if ms, err = db.Match(context.Background(), pkgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(len(ms)), "matches")
}

func BenchmarkImportRustsec(b *testing.B) {
	in := sharedData(b, "rustsec-osv.zip")
	st, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	cpu := processCPU()
	for b.Loop() {
		if _, err := Import(context.Background(), b.TempDir(), []string{in}, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/1e6/float64(b.N), "cpu-ms/op")
	b.ReportMetric(1206/(b.Elapsed().Seconds()/float64(b.N)), "records/s")
}

// BenchmarkMatchSmall runs the committed testdata only, so the match path
// has a benchmark that needs nothing outside the repository.
func BenchmarkMatchSmall(b *testing.B) {
	db := importDirs(b, allTestdata...)
	pkgs := []inventory.Package{
		goMod("stdlib", "go1.21rc2"), goMod("golang.org/x/net", "v0.16.0"),
		{Name: "urllib3", Version: "1.17", Ecosystem: "PyPI"}, {Name: "lodash", Version: "4.17.4", Ecosystem: "npm"},
		{Name: "openssl", Version: "1.1.1c-r0", Ecosystem: "Alpine:v3.10"}, {Name: "absent", Version: "1", Ecosystem: "npm"},
	}
	for b.Loop() {
		if _, err := db.Match(context.Background(), pkgs); err != nil {
			b.Fatal(err)
		}
	}
}
