package vulndb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// openRecords compiles OSV records given as JSON text into a database. The
// records are written for the test (no real Debian data is available
// offline); they go through the same parser and index as real ones.
func openRecords(t *testing.T, docs ...string) *DB {
	t.Helper()
	src := &sourceData{Status: SourceStatus{Name: "synthetic", Format: FormatOSV}}
	for _, d := range docs {
		r, _, err := parseOSV([]byte(d), false, "")
		if err != nil {
			t.Fatalf("parse %s: %v", d, err)
		}
		src.Records = append(src.Records, r)
	}
	dir := t.TempDir()
	if err := writeSource(dir, src); err != nil {
		t.Fatal(err)
	}
	if err := Rebuild(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMatchBoundariesSynthetic(t *testing.T) {
	db := openRecords(t,
		`{"id":"TEST-DEB-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"foo"},
		  "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:2.4.3-1~deb12u1"}]}]}]}`,
		`{"id":"TEST-LAST-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"lastpkg"},
		  "ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.2.0"}]}]}]}`,
		`{"id":"TEST-LIST-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"Listed_Pkg"},
		  "versions":["3.0","3.1"]}]}`,
		`{"id":"TEST-LIMIT-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"RubyGems","name":"lim"},
		  "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"limit":"2.0.0"}]}]}]}`,
		`{"id":"TEST-ALL-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Maven","name":"org.example:every"}}]}`,
		`{"id":"TEST-GIT-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Maven","name":"org.example:git"},
		  "ranges":[{"type":"GIT","repo":"https://example.org/r","events":[{"introduced":"0"},{"fixed":"abcdef"}]}]}]}`,
	)
	f := func(id, by, installed string, fixed ...string) []found {
		return []found{{ID: id, Fixed: fixed, MatchedBy: by, Installed: installed}}
	}
	deb := func(v string) inventory.Package {
		return inventory.Package{Name: "foo", Version: v, Type: inventory.TypeDeb, Ecosystem: "Debian:12"}
	}
	tests := []struct {
		name string
		pkg  inventory.Package
		want []found
	}{
		{"debian missing epoch is epoch 0", deb("2.4.3-1~deb12u1"), f("TEST-DEB-1", "Debian:12/foo", "2.4.3-1~deb12u1", "1:2.4.3-1~deb12u1")},
		{"debian at fix", deb("1:2.4.3-1~deb12u1"), nil},
		{"debian older stable build", deb("1:2.4.3-1~deb11u1"), f("TEST-DEB-1", "Debian:12/foo", "1:2.4.3-1~deb11u1", "1:2.4.3-1~deb12u1")},
		{"debian tilde sorts before release", deb("1:2.4.3-1"), nil},
		{"debian point release", inventory.Package{Name: "foo", Version: "1:2.4.2-1", Ecosystem: "Debian:12.4"}, f("TEST-DEB-1", "Debian:12/foo", "1:2.4.2-1", "1:2.4.3-1~deb12u1")},
		{"debian other release", inventory.Package{Name: "foo", Version: "1:2.4.2-1", Ecosystem: "Debian:11"}, nil},
		{"debian binary via source", inventory.Package{Name: "libfoo1", Version: "1:2.4.2-1+b1", SourceName: "foo", SourceVersion: "1:2.4.2-1", Ecosystem: "Debian:12"},
			f("TEST-DEB-1", "Debian:12/foo (source package)", "1:2.4.2-1", "1:2.4.3-1~deb12u1")},
		{"debian binary name alone does not match", inventory.Package{Name: "libfoo1", Version: "1:2.4.2-1", Ecosystem: "Debian:12"}, nil},
		{"last_affected inclusive", inventory.Package{Name: "lastpkg", Version: "1.2.0", Ecosystem: "npm"}, f("TEST-LAST-1", "npm/lastpkg", "1.2.0")},
		{"after last_affected", inventory.Package{Name: "lastpkg", Version: "1.2.1", Ecosystem: "npm"}, nil},
		{"introduced inclusive", inventory.Package{Name: "lastpkg", Version: "1.0.0", Ecosystem: "npm"}, f("TEST-LAST-1", "npm/lastpkg", "1.0.0")},
		{"before introduced", inventory.Package{Name: "lastpkg", Version: "0.9.9", Ecosystem: "npm"}, nil},
		{"versions list", inventory.Package{Name: "listed-pkg", Version: "3.1", Ecosystem: "PyPI"}, f("TEST-LIST-1", "PyPI/listed-pkg", "3.1")},
		{"versions list, PEP 440 equal", inventory.Package{Name: "listed.pkg", Version: "3.0.0", Ecosystem: "PyPI"}, f("TEST-LIST-1", "PyPI/listed.pkg", "3.0.0")},
		{"versions list, absent", inventory.Package{Name: "listed-pkg", Version: "3.2", Ecosystem: "PyPI"}, nil},
		{"limit is exclusive and no fix", inventory.Package{Name: "lim", Version: "1.9", Ecosystem: "RubyGems"}, f("TEST-LIMIT-1", "RubyGems/lim", "1.9")},
		{"at limit", inventory.Package{Name: "lim", Version: "2.0.0", Ecosystem: "RubyGems"}, nil},
		{"no ranges means every version", inventory.Package{Name: "org.example:every", Version: "9.9", Ecosystem: "Maven"}, f("TEST-ALL-1", "Maven/org.example:every", "9.9")},
		{"GIT ranges cannot match versions", inventory.Package{Name: "org.example:git", Version: "1.0", Ecosystem: "Maven"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := db.Match(context.Background(), []inventory.Package{tc.pkg})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, summarize(ms)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseOSVYAMLScalars(t *testing.T) {
	// Unquoted versions and timestamps keep their text ("1.10" is not 1.1).
	doc := "id: PYSEC-0000-1\nmodified: 2021-08-27T03:42:51.689777Z\naffected:\n- package: {name: x, ecosystem: PyPI}\n  ranges:\n  - type: ECOSYSTEM\n    events:\n    - introduced: 0\n    - fixed: 1.10\n"
	r, _, err := parseOSV([]byte(doc), true, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []interval{{Hi: "1.10", Fix: "1.10"}}
	if diff := cmp.Diff(want, r.Affected[0].Ranges); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if r.Modified.IsZero() {
		t.Error("modified not parsed")
	}
}

func TestParseOSVHostile(t *testing.T) {
	big := strings.Repeat("A", MaxRecordSize)
	laughs := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	for i := 'b'; i <= 'j'; i++ {
		prev := string(i - 1)
		laughs += string(i) + ": &" + string(i) + " [*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + "]\n"
	}
	laughs += "id: X-1\nmodified: 2024-01-01T00:00:00Z\n"
	tests := []struct {
		name    string
		doc     string
		yaml    bool
		wantErr string
	}{
		{"truncated JSON", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[`, false, "decode JSON"},
		{"wrong type", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":"everything"}`, false, "decode JSON"},
		{"wrong event type", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"fixed":1}]}]}]}`, false, "decode JSON"},
		{"id with spaces", `{"id":"X 1","modified":"2024-01-01T00:00:00Z"}`, false, "blank or control"},
		{"id missing", `{"modified":"2024-01-01T00:00:00Z"}`, false, "no id"},
		{"bad modified", `{"id":"X-1","modified":"yesterday"}`, false, "bad time"},
		{"huge string", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","details":"` + big + `"}`, false, "over the"},
		{"huge version", `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"` + strings.Repeat("9", 300) + `"}]}]}]}`, false, "bad introduced"},
		{"billion laughs", laughs, true, "aliases are not allowed"},
		{"deep nesting", "id: X-1\nmodified: 2024-01-01T00:00:00Z\nx: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n", true, "decode YAML"},
		{"YAML wrong type", "id: X-1\nmodified: 2024-01-01T00:00:00Z\naffected: 7\n", true, "decode YAML"},
		{"YAML tabs", "id: X-1\n\tmodified: x\n", true, "decode YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseOSV([]byte(tc.doc), tc.yaml, "")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	for _, notRec := range []string{`{"name":"a package.json"}`, `[1,2]`, `"x"`} {
		if _, _, err := parseOSV([]byte(notRec), false, ""); !errors.Is(err, errNotRecord) {
			t.Errorf("%s: got %v, want errNotRecord", notRec, err)
		}
	}
	if _, _, err := parseOSV([]byte("- a\n- b\n"), true, ""); !errors.Is(err, errNotRecord) {
		t.Errorf("YAML list: got %v, want errNotRecord", err)
	}
}

func TestNPMRanges(t *testing.T) {
	tests := []struct {
		rng  string
		want []interval
	}{
		{"<1.6.5 || < 2.1.7 > 2.0.0", []interval{{Hi: "1.6.5"}, {Lo: "2.0.0", LoExcl: true, Hi: "2.1.7"}}},
		{"2.0.x || 2.1.x", []interval{{Lo: "2.0.0", Hi: "2.1.0-0"}, {Lo: "2.1.0", Hi: "2.2.0-0"}}},
		{"*", []interval{{}}},
		{"<=99.999.99999", []interval{{Hi: "99.999.99999", HiIncl: true}}},
		{"^1.2.3", []interval{{Lo: "1.2.3", Hi: "2.0.0-0"}}},
		{"^0.2.3", []interval{{Lo: "0.2.3", Hi: "0.3.0-0"}}},
		{"^0.0.3", []interval{{Lo: "0.0.3", Hi: "0.0.4-0"}}},
		{"~1.2", []interval{{Lo: "1.2.0", Hi: "1.3.0-0"}}},
		{"~0.8.0-pre", []interval{{Lo: "0.8.0-pre", Hi: "0.9.0-0"}}},
		{"1.2.3 - 2.3", []interval{{Lo: "1.2.3", Hi: "2.4.0-0"}}},
		{"<3.11 || >= 4 <4.5", []interval{{Hi: "3.11.0-0"}, {Lo: "4.0.0", Hi: "4.5.0-0"}}},
		{">=3.0.0 <=3.9.1 || =3.10.2", []interval{{Lo: "3.0.0", Hi: "3.9.1", HiIncl: true}, {Lo: "3.10.2", Hi: "3.10.2", HiIncl: true}}},
		{"<0.0.0", []interval{{Hi: "0.0.0"}}}, // "nothing patched": only 0.0.0 prereleases
		{">2.0.0 <2.0.0", nil},
	}
	for _, tc := range tests {
		got, err := npmRangeIntervals(tc.rng)
		if err != nil {
			t.Errorf("%q: %v", tc.rng, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.rng, diff)
		}
	}
	for _, bad := range []string{"<1.2.3.4.5", ">=abc", "1.x.3"} {
		if _, err := npmRangeIntervals(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEPSSFixture(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "epss", "epss_scores-sample.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scores, date, skipped, err := parseEPSS(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"CVE-2023-44487": 0.94436, "CVE-2024-24790": 0.00139, "CVE-2022-32149": 0.00412, "CVE-1999-0001": 0.01141}
	if diff := cmp.Diff(want, scores); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if !date.Equal(time.Date(2025, 8, 25, 0, 0, 0, 0, time.UTC)) || skipped != 0 {
		t.Errorf("date %v skipped %d", date, skipped)
	}
	if _, _, _, err := parseEPSS(strings.NewReader("cve,score\nCVE-2020-0001,0.5\n")); err == nil {
		t.Error("wrong header accepted")
	}
	_, _, skipped, err = parseEPSS(strings.NewReader("cve,epss,percentile\nCVE-2020-0001,0.5,0.1\nnot-a-cve,0.1,0.1\nCVE-2020-0002,7,0.1\n"))
	if err != nil || skipped != 2 {
		t.Errorf("skipped %d err %v, want 2 skipped", skipped, err)
	}
}

func TestScoreVector(t *testing.T) {
	tests := []struct {
		vec  string
		want CVSS
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", CVSS{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Score: 9.8}},
		{"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:L", CVSS{Version: "3.0", Vector: "CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:L", Score: 5.3}},
		{"(AV:N/AC:L/Au:N/C:P/I:P/A:P)", CVSS{Version: "2.0", Vector: "AV:N/AC:L/Au:N/C:P/I:P/A:P", Score: 7.5}},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", CVSS{Version: "4.0", Vector: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", Score: 9.3}},
	}
	for _, tc := range tests {
		got, err := ScoreVector(tc.vec)
		if err != nil {
			t.Errorf("%s: %v", tc.vec, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	if _, err := ScoreVector("CVSS:3.1/AV:X"); err == nil {
		t.Error("bad vector accepted")
	}
}

// TestParseOSVImports reads go-vulndb's ecosystem_specific.imports (the
// vulnerable packages, their platforms and symbols) and ignores an
// "imports" of another shape, which the free-form object allows.
func TestParseOSVImports(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "go-platform", "GO-2024-2961.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := parseOSV(data, false, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []goImport{{
		Path: "golang.org/x/crypto/acme/autocert", GOOS: []string{"windows"},
		Symbols: []string{"DirCache.Delete", "DirCache.Get", "DirCache.Put", "HostWhitelist", "Manager.GetCertificate",
			"Manager.Listener", "NewListener", "listener.Accept", "listener.Close"},
	}}
	if diff := cmp.Diff(want, r.Affected[0].Imports); diff != "" {
		t.Errorf("imports (-want +got):\n%s", diff)
	}

	const head = `{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"example.com/m"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}],"ecosystem_specific":`
	long := strings.Repeat("a", maxImportField+1)
	for name, c := range map[string]struct {
		doc  string
		yaml bool
		want []goImport
	}{
		"another shape":   {head + `{"imports":"all"}}]}`, false, nil},
		"wrong item type": {head + `{"imports":[{"path":1}]}}]}`, false, nil},
		"no path, long strings": {head + `{"imports":[{"symbols":["F"]},{"path":"example.com/m/p","goos":["` + long + `","linux"],"symbols":["","G"]}]}}]}`, false,
			[]goImport{{Path: "example.com/m/p", GOOS: []string{"linux"}, Symbols: []string{"G"}}}},
		"YAML": {"id: X-1\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: Go, name: example.com/m}\n  ecosystem_specific:\n    imports:\n    - path: example.com/m/p\n      goarch: [amd64]\n", true,
			[]goImport{{Path: "example.com/m/p", GOARCH: []string{"amd64"}}}},
		"YAML another shape": {"id: X-1\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: Go, name: example.com/m}\n  ecosystem_specific: {imports: {path: x}}\n", true, nil},
	} {
		r, _, err := parseOSV([]byte(c.doc), c.yaml, "")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(r.Affected) != 1 {
			t.Errorf("%s: %d affected", name, len(r.Affected))
			continue
		}
		if diff := cmp.Diff(c.want, r.Affected[0].Imports); diff != "" {
			t.Errorf("%s: imports (-want +got):\n%s", name, diff)
		}
	}
}
