package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// loadResult reads the fixed result the golden files are rendered from. It
// is assembled from real advisories (see testdata/README.md).
func loadResult(t testing.TB) *scan.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res scan.Result
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("testdata/result.json: %v", err)
	}
	// Match.Package is not serialised; restore the index the matcher sets.
	for i := range res.Findings {
		res.Findings[i].Match.Package = indexOf(&res, &res.Findings[i])
	}
	return &res
}

func indexOf(res *scan.Result, f *scan.Finding) int {
	for i := range res.Packages {
		if samePackage(&res.Packages[i], &f.Package) {
			return i
		}
	}
	return -1
}

func render(t testing.TB, res *scan.Result, f Format, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, res, f, opts); err != nil {
		t.Fatalf("Write %s: %v", f, err)
	}
	return buf.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got; go test -update to accept):\n%s", name, diff)
	}
}

func TestGolden(t *testing.T) {
	res := loadResult(t)
	cases := []struct {
		name   string
		format Format
		opts   Options
	}{
		{"table", FormatTable, Options{}},
		{"table-color", FormatTable, Options{Color: true}},
		{"table-width100", FormatTable, Options{Width: 100}},
		{"table-packages", FormatTable, Options{ListPackages: true}},
		{"json", FormatJSON, Options{}},
		{"sarif", FormatSARIF, Options{}},
		{"cyclonedx", FormatCycloneDX, Options{}},
		{"spdx", FormatSPDX, Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, res, c.format, c.opts)
			checkGolden(t, c.name, got)
			// Rendering is pure: a second run gives the same bytes.
			if again := render(t, res, c.format, c.opts); !bytes.Equal(got, again) {
				t.Error("two renderings of the same result differ")
			}
		})
	}
}

// TestFixtureScores keeps the fixture honest: every CVSS score in it is the
// one go-cvss computes from its vector.
func TestFixtureScores(t *testing.T) {
	res := loadResult(t)
	for _, f := range append(res.Findings, res.Suppressed...) {
		for _, c := range f.Vulnerability.CVSS {
			var score float64
			switch c.Version {
			case "3.1":
				v, err := gocvss31.ParseVector(c.Vector)
				if err != nil {
					t.Fatal(err)
				}
				score = v.BaseScore()
			case "3.0":
				v, err := gocvss30.ParseVector(c.Vector)
				if err != nil {
					t.Fatal(err)
				}
				score = v.BaseScore()
			default:
				t.Fatalf("fixture has CVSS %s; extend this test", c.Version)
			}
			if score != c.Score {
				t.Errorf("%s: fixture score %v, go-cvss says %v", c.Vector, c.Score, score)
			}
		}
	}
}

func TestParseFormat(t *testing.T) {
	for _, name := range Formats() {
		f, err := ParseFormat(strings.ToUpper(name))
		if err != nil || string(f) != name {
			t.Errorf("ParseFormat(%q) = %q, %v", name, f, err)
		}
	}
	if _, err := ParseFormat("xml"); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("ParseFormat(xml) error = %v, want ErrUnknownFormat", err)
	}
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, loadResult(t), Format("yaml"), Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Write(yaml) error = %v, want ErrUnknownFormat", err)
	}
}

func TestWriteCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	if err := Write(ctx, &buf, loadResult(t), FormatJSON, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if buf.Len() != 0 {
		t.Error("a cancelled Write wrote output")
	}
}

// TestJSONRoundTrip: the JSON output is the Result, nothing lost.
func TestJSONRoundTrip(t *testing.T) {
	res := loadResult(t)
	out := render(t, res, FormatJSON, Options{})
	var back scan.Result
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	for i := range back.Findings {
		back.Findings[i].Match.Package = indexOf(&back, &back.Findings[i])
	}
	if diff := cmp.Diff(res, &back); diff != "" {
		t.Errorf("JSON round trip lost data (-want +got):\n%s", diff)
	}
}

func TestJSONEmptyArrays(t *testing.T) {
	out := render(t, &scan.Result{SchemaVersion: scan.SchemaVersion}, FormatJSON, Options{})
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"packages", "findings"} {
		if _, ok := m[k].([]any); !ok {
			t.Errorf("%q = %#v, want an empty array", k, m[k])
		}
	}
}

var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestTableSummaryAndSections(t *testing.T) {
	res := loadResult(t)
	out := string(render(t, res, FormatTable, Options{}))

	// The summary is computed from the fixture independently of the
	// renderer's own counting.
	counts := map[vulndb.Severity]int{}
	fixable := 0
	for _, f := range res.Findings {
		counts[f.Vulnerability.Severity]++
		if len(f.FixedVersions) > 0 {
			fixable++
		}
	}
	want := strings.Join([]string{
		itoa(len(res.Findings)) + " vulnerabilities (",
		itoa(counts[vulndb.SeverityCritical]) + " critical, ",
		itoa(counts[vulndb.SeverityHigh]) + " high, ",
		itoa(counts[vulndb.SeverityMedium]) + " medium, ",
		itoa(counts[vulndb.SeverityLow]) + " low, ",
		itoa(counts[vulndb.SeverityUnknown]) + " unknown), ",
		itoa(fixable) + " fixable; ",
		itoa(len(res.Suppressed)) + " suppressed (1 vex)",
	}, "")
	if !strings.Contains(out, want+"\n") {
		t.Errorf("summary line %q not in output:\n%s", want, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("colour codes in output without Color")
	}
	// Severity groups in order, CRITICAL first.
	last := -1
	for _, s := range []string{"CRITICAL (2)", "HIGH (3)", "UNKNOWN (1)"} {
		i := strings.Index(out, s)
		if i < 0 || i < last {
			t.Errorf("group heading %q missing or out of order", s)
		}
		last = i
	}
	for _, s := range []string{"GO-2023-2153 [KEV]", "HIGH 7.5", "no fix", "1.20.10, 1.21.3", "Digest:", res.Target.Digest, "AlmaLinux 9.3", "57,321 vulnerabilities", "2 days before the scan", "app/bin/broken-helper"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestTableColor(t *testing.T) {
	res := loadResult(t)
	plain := string(render(t, res, FormatTable, Options{}))
	color := string(render(t, res, FormatTable, Options{Color: true}))
	if !strings.Contains(color, ansiCritical+"CRITICAL 9.8"+ansiReset) {
		t.Error("critical severity is not painted")
	}
	// Colour changes nothing but the escape codes: alignment is the same.
	if got := ansiRE.ReplaceAllString(color, ""); got != plain {
		t.Errorf("coloured table differs from the plain one beyond colour codes:\n%s", cmp.Diff(plain, got))
	}
	for _, c := range []string{ansiBold, ansiPlain, ansiCritical, ansiHigh, ansiMedium, ansiLow, ansiUnknown, ansiKEV} {
		if len(c) != 5 {
			t.Errorf("colour code %q is %d bytes; all must be 5 for tabwriter alignment", c, len(c))
		}
	}
}

func TestTableWidth(t *testing.T) {
	res := loadResult(t)
	for _, width := range []int{80, 100, 160} {
		out := string(render(t, res, FormatTable, Options{Width: width}))
		inTable := false
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "ID ") {
				inTable = true
			}
			if line == "" {
				inTable = false
			}
			if inTable && utf8.RuneCountInString(line) > width {
				t.Errorf("width %d: table line is %d wide: %q", width, utf8.RuneCountInString(line), line)
			}
		}
		if !strings.Contains(out, "…") {
			t.Errorf("width %d: nothing was truncated", width)
		}
	}
}

// TestTableHostileText: advisory and image text cannot inject terminal
// escapes or break rows.
func TestTableHostileText(t *testing.T) {
	res := loadResult(t)
	res.Findings[0].Vulnerability.Summary = "evil\x1b]0;pwned\x07\x1b[2J\nsecond line\r"
	res.Findings[0].Package.Name = "pkg\x1b[31m"
	res.OS.PrettyName = "Alma\x1b[5mLinux"
	res.Errors[0].Error = "bad\nthing"
	for _, color := range []bool{false, true} {
		out := string(render(t, res, FormatTable, Options{Color: color}))
		clean := ansiRE.ReplaceAllStringFunc(out, func(s string) string {
			switch s {
			case ansiReset, ansiBold, ansiPlain, ansiCritical, ansiHigh, ansiMedium, ansiLow, ansiUnknown, ansiKEV:
				return ""
			}
			return s
		})
		if strings.ContainsAny(clean, "\x1b\x07\r") {
			t.Errorf("color=%v: control characters from the data reached the output: %q", color, clean)
		}
		if strings.Contains(out, "\nsecond line") || strings.Contains(out, "\nthing") {
			t.Errorf("color=%v: a newline in the data broke a row", color)
		}
	}
}

func TestTableOSInstalledMarker(t *testing.T) {
	res := loadResult(t)
	f := res.Suppressed[0] // urllib3 installed by python3-urllib3
	f.Suppression = nil
	res.Findings = append(res.Findings, f)
	out := string(render(t, res, FormatTable, Options{}))
	for _, s := range []string{"urllib3*", "* a language package installed by an OS package", "installed by the OS package python3-urllib3; " + f.Note} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestTableEmpty(t *testing.T) {
	res := &scan.Result{Target: scan.Target{Kind: "fs", Name: "."}, DB: &vulndb.Status{}}
	out := string(render(t, res, FormatTable, Options{}))
	for _, s := range []string{"No vulnerabilities found.", "0 vulnerabilities (0 critical, 0 high, 0 medium, 0 low), 0 fixable; 0 suppressed", "OS:        not detected"} {
		if !strings.Contains(out, s) {
			t.Errorf("empty result: output lacks %q:\n%s", s, out)
		}
	}
	res.DB = nil
	out = string(render(t, res, FormatTable, Options{}))
	if strings.Contains(out, "No vulnerabilities found") || !strings.Contains(out, "inventory only") {
		t.Errorf("without a database the table must not claim there are no vulnerabilities:\n%s", out)
	}
}

func TestPrimaryCVSS(t *testing.T) {
	v := &vulndb.Vulnerability{CVSS: []vulndb.CVSS{
		{Version: "2.0", Score: 10},
		{Version: "4.0", Score: 9.3},
		{Version: "3.1", Score: 7.5},
		{Version: "3.1", Score: 8.1},
		{Version: "3.0", Score: 9.8},
	}}
	if c := primaryCVSS(v); c == nil || c.Version != "3.1" || c.Score != 8.1 {
		t.Errorf("primaryCVSS = %+v, want the highest 3.1 score", c)
	}
	if c := primaryCVSS(&vulndb.Vulnerability{CVSS: []vulndb.CVSS{{Version: "2.0", Score: 5}}}); c == nil || c.Version != "2.0" {
		t.Errorf("primaryCVSS = %+v, want the 2.0 score when it is the only one", c)
	}
	if c := primaryCVSS(&vulndb.Vulnerability{}); c != nil {
		t.Errorf("primaryCVSS of no scores = %+v", c)
	}
}

func TestTruncate(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"abcdef", 10, "abcdef"},
		{"abcdef", 6, "abcdef"},
		{"abcdef", 5, "abcd…"},
		{"äöüßé", 3, "äö…"},
		{"abc", 1, "…"},
		{"abc", 0, "abc"},
	}
	for _, c := range cases {
		if got := truncate(c.in, c.n); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestJSONSchemaDocumented fails when a field is added to the result types
// without being described in docs/json-schema.md.
func TestJSONSchemaDocumented(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
	doc, err := os.ReadFile(filepath.Join(dir, "docs", "json-schema.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() == "time" {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "-" {
				continue
			}
			if f.Anonymous && tag == "" {
				walk(f.Type, path)
				continue
			}
			if tag == "" {
				tag = f.Name
			}
			if !bytes.Contains(doc, []byte("| `"+tag+"` |")) {
				t.Errorf("field %s.%s (json %q) is not described in docs/json-schema.md", path, f.Name, tag)
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	walk(reflect.TypeFor[scan.Result](), "Result")
}
