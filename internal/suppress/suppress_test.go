package suppress

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// loadResult is the report package's fixed result (real advisories; see
// internal/report/testdata/README.md), with its earlier suppressions
// dropped so each test starts from the matcher's output.
func loadResult(t testing.TB) *scan.Result {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "report", "testdata", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res scan.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	res.Suppressed = nil
	return &res
}

func ids(fs []scan.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Vulnerability.ID)
	}
	slices.Sort(out)
	return out
}

func without(all []string, drop ...string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

func mustIgnore(t *testing.T, name string) *IgnoreFile {
	t.Helper()
	s := &Set{}
	if err := s.LoadIgnoreFile(filepath.Join("testdata", name)); err != nil {
		t.Fatal(err)
	}
	return s.Ignores[0]
}

func mustVEX(t *testing.T, names ...string) []*VEXDocument {
	t.Helper()
	s := &Set{}
	for _, n := range names {
		if err := s.LoadVEX(filepath.Join("testdata", "vex", n)); err != nil {
			t.Fatal(err)
		}
	}
	return s.VEX
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseIgnoreYAML(t *testing.T) {
	f := mustIgnore(t, "bulwarkignore.yaml")
	src := filepath.Join("testdata", "bulwarkignore.yaml")
	want := &IgnoreFile{Source: src, Format: "yaml", Entries: []IgnoreEntry{
		{ID: "CVE-2023-44487", Package: "google.golang.org/grpc", Reason: "HTTP/2 is terminated at the load balancer; grpc only sees HTTP/1.1",
			Expires: date("2026-10-01T00:00:00Z"), Line: 5},
		{ID: "RUSTSEC-2021-0045", Package: "pkg:cargo/adtensor", Reason: "used by test helpers only, never with untrusted input", Line: 11},
		{ID: "CVE-2026-9076", Package: "openssl", Reason: "CMS password-based decryption is not used", Expires: date("2026-08-01T00:00:00Z"), Line: 16},
	}}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseIgnoreList(t *testing.T) {
	f := mustIgnore(t, "trivyignore")
	src := filepath.Join("testdata", "trivyignore")
	want := &IgnoreFile{Source: src, Format: "list", Entries: []IgnoreEntry{
		{ID: "CVE-2021-25900", Reason: "listed in " + src, Line: 2},
		{ID: "GHSA-v845-jxx5-vc9f", Reason: "listed in " + src, Expires: date("2027-01-01T00:00:00Z"), Line: 3},
		{ID: "GO-2023-2102", Reason: "listed in " + src, Expires: date("2024-01-02T00:00:00Z"), Line: 6},
	}}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// IDs with colons (AlmaLinux) are list entries, not YAML.
	l, err := ParseIgnoreFile("x", []byte("ALSA-2026:25239\n"))
	if err != nil || l.Format != "list" || l.Entries[0].ID != "ALSA-2026:25239" {
		t.Errorf("ALSA list entry: %+v, %v", l, err)
	}
}

func TestApplyIgnoreFile(t *testing.T) {
	all := ids(loadResult(t).Findings)
	ignore := mustIgnore(t, "bulwarkignore.yaml")
	cases := []struct {
		name       string
		now        string
		suppressed []string
		warnings   int
	}{
		// Before every expiry: grpc (by name), adtensor (by PURL prefix),
		// openssl-libs (by source package name, via the CVE alias).
		{"before expiry", "2026-07-31T23:59:59Z", []string{"GO-2023-2153", "RUSTSEC-2021-0045", "ALSA-2026:25239"}, 0},
		// The openssl entry expired at 2026-08-01T00:00Z exactly.
		{"at the openssl expiry", "2026-08-01T00:00:00Z", []string{"GO-2023-2153", "RUSTSEC-2021-0045"}, 1},
		// A date expiry lasts through that day.
		{"last day of grpc entry", "2026-09-30T23:59:59Z", []string{"GO-2023-2153", "RUSTSEC-2021-0045"}, 1},
		{"after the grpc expiry", "2026-10-01T00:00:00Z", []string{"RUSTSEC-2021-0045"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := loadResult(t)
			s := &Set{Ignores: []*IgnoreFile{ignore}}
			warnings := s.Apply(res, date(c.now))
			got := ids(res.Suppressed)
			want := slices.Clone(c.suppressed)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("suppressed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(without(all, c.suppressed...), ids(res.Findings)); diff != "" {
				t.Errorf("remaining (-want +got):\n%s", diff)
			}
			if len(warnings) != c.warnings {
				t.Errorf("warnings %q, want %d", warnings, c.warnings)
			}
			for _, w := range warnings {
				if !strings.Contains(w, "expired") || !strings.Contains(w, "bulwarkignore.yaml: line ") {
					t.Errorf("warning %q does not say which entry expired", w)
				}
			}
			for _, f := range res.Suppressed {
				sup := f.Suppression
				if sup == nil || sup.Kind != KindIgnoreFile || sup.Reason == "" || !strings.HasSuffix(sup.Source, "bulwarkignore.yaml") {
					t.Errorf("%s: suppression %+v", f.Vulnerability.ID, sup)
				}
			}
		})
	}
}

func TestPackageFilter(t *testing.T) {
	res := loadResult(t)
	var grpc, openssl scan.Finding
	for _, f := range res.Findings {
		switch f.Package.Name {
		case "google.golang.org/grpc":
			grpc = f
		case "openssl-libs":
			openssl = f
		}
	}
	cases := []struct {
		f      scan.Finding
		filter string
		want   bool
	}{
		{grpc, "", true},
		{grpc, "google.golang.org/grpc", true},
		{grpc, "google.golang.org/grp", false},
		{grpc, "pkg:golang/google.golang.org/grpc", true},
		{grpc, "pkg:golang/google.golang.org/grpc@v1.56.2", true},
		{grpc, "pkg:golang/google.golang.org/grpc@v1.56", false}, // no version prefixes
		{grpc, "pkg:golang/google.golang.org/grp", false},
		{grpc, "pkg:golang/google.golang.org/", true}, // a namespace
		{grpc, "pkg:npm/google.golang.org/grpc", false},
		{openssl, "openssl", true}, // source package
		{openssl, "OpenSSL-libs", true},
		{openssl, "pkg:rpm/almalinux/openssl-libs@3.0.7-24.el9?arch=x86_64", true},
		{openssl, "pkg:rpm/almalinux/openssl", false},
	}
	for _, c := range cases {
		if got := matchesPackage(&c.f.Package, c.filter); got != c.want {
			t.Errorf("%s with filter %q = %v, want %v", c.f.Package.PURL, c.filter, got, c.want)
		}
	}
}

func TestApplyTrivyIgnore(t *testing.T) {
	res := loadResult(t)
	s := &Set{Ignores: []*IgnoreFile{mustIgnore(t, "trivyignore")}}
	warnings := s.Apply(res, date("2026-08-24T09:00:00Z"))
	// CVE-2021-25900 is an alias of RUSTSEC-2021-0003, GHSA-v845-jxx5-vc9f of
	// PYSEC-2023-192; the GO-2023-2102 entry expired in 2024.
	if diff := cmp.Diff([]string{"PYSEC-2023-192", "RUSTSEC-2021-0003"}, ids(res.Suppressed)); diff != "" {
		t.Errorf("suppressed (-want +got):\n%s", diff)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "GO-2023-2102") {
		t.Errorf("warnings %q", warnings)
	}
}

func TestApplyVEX(t *testing.T) {
	all := ids(loadResult(t).Findings)
	cases := []struct {
		name       string
		docs       []string
		suppressed []string
	}{
		// grpc: not_affected for the image, narrowed to grpc; smallvec:
		// fixed; urllib3: under_investigation (kept); openssl: affected
		// (kept, the image named by its sha-256 hash).
		{"image", []string{"image.openvex.json"}, []string{"GO-2023-2153", "RUSTSEC-2021-0003"}},
		// The later document flips grpc to affected and urllib3 to
		// not_affected: the latest statement wins, whatever the file order.
		{"image+later", []string{"image.openvex.json", "later.openvex.json"}, []string{"PYSEC-2023-192", "RUSTSEC-2021-0003"}},
		{"later+image", []string{"later.openvex.json", "image.openvex.json"}, []string{"PYSEC-2023-192", "RUSTSEC-2021-0003"}},
		// v0.0.x: vulnerability and products as plain strings.
		{"legacy", []string{"legacy-v0.0.2.openvex.json"}, []string{"RUSTSEC-2021-0045"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := loadResult(t)
			s := &Set{VEX: mustVEX(t, c.docs...)}
			if w := s.Apply(res, date("2026-08-24T09:00:00Z")); len(w) != 0 {
				t.Errorf("warnings %q", w)
			}
			want := slices.Clone(c.suppressed)
			slices.Sort(want)
			if diff := cmp.Diff(want, ids(res.Suppressed)); diff != "" {
				t.Errorf("suppressed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(without(all, c.suppressed...), ids(res.Findings)); diff != "" {
				t.Errorf("remaining (-want +got):\n%s", diff)
			}
			for _, f := range res.Suppressed {
				if f.Suppression == nil || f.Suppression.Kind != KindVEX || !strings.HasSuffix(f.Suppression.Source, ".openvex.json") {
					t.Errorf("%s: suppression %+v", f.Vulnerability.ID, f.Suppression)
				}
			}
		})
	}
}

func TestVEXImageMustMatchDigest(t *testing.T) {
	res := loadResult(t)
	res.Target.Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	s := &Set{VEX: mustVEX(t, "image.openvex.json")}
	s.Apply(res, date("2026-08-24T09:00:00Z"))
	// Only the package-level smallvec statement applies to another image.
	if diff := cmp.Diff([]string{"RUSTSEC-2021-0003"}, ids(res.Suppressed)); diff != "" {
		t.Errorf("suppressed (-want +got):\n%s", diff)
	}
	res = loadResult(t)
	res.Target.Kind = "fs"
	s.Apply(res, date("2026-08-24T09:00:00Z"))
	if diff := cmp.Diff([]string{"RUSTSEC-2021-0003"}, ids(res.Suppressed)); diff != "" {
		t.Errorf("directory scan: suppressed (-want +got):\n%s", diff)
	}
}

func TestVEXSameTimestampLaterWins(t *testing.T) {
	doc := func(status string) *VEXDocument {
		d, err := ParseOpenVEX(status, []byte(`{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","author":"a","timestamp":"2026-01-01T00:00:00Z","version":1,
		  "statements":[{"vulnerability":{"name":"RUSTSEC-2021-0045"},"products":[{"@id":"pkg:cargo/adtensor"}],"status":"`+status+`","justification":"component_not_present"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, c := range []struct {
		order      []string
		suppressed bool
	}{
		{[]string{StatusAffected, StatusNotAffected}, true},
		{[]string{StatusNotAffected, StatusAffected}, false},
	} {
		res := loadResult(t)
		s := &Set{}
		for _, st := range c.order {
			s.VEX = append(s.VEX, doc(st))
		}
		s.Apply(res, time.Time{})
		if got := slices.Contains(ids(res.Suppressed), "RUSTSEC-2021-0045"); got != c.suppressed {
			t.Errorf("order %v: suppressed %v, want %v", c.order, got, c.suppressed)
		}
	}
}

func TestIgnoreUnfixed(t *testing.T) {
	res := loadResult(t)
	var unfixed []string
	for _, f := range res.Findings {
		if len(f.FixedVersions) == 0 {
			unfixed = append(unfixed, f.Vulnerability.ID)
		}
	}
	if len(unfixed) == 0 {
		t.Fatal("fixture has no unfixed finding")
	}
	s := &Set{IgnoreUnfixed: true}
	s.Apply(res, time.Time{})
	if diff := cmp.Diff(unfixed, ids(res.Suppressed)); diff != "" {
		t.Errorf("suppressed (-want +got):\n%s", diff)
	}
	for _, f := range res.Suppressed {
		if f.Suppression.Kind != KindUnfixed {
			t.Errorf("%s: kind %q", f.Vulnerability.ID, f.Suppression.Kind)
		}
	}
	for _, f := range res.Findings {
		if len(f.FixedVersions) == 0 {
			t.Errorf("%s has no fix and was kept", f.Vulnerability.ID)
		}
	}
}

// TestPrecedence: a finding hidden by several sources records the ignore
// file first, then VEX, then unfixed.
func TestPrecedence(t *testing.T) {
	res := loadResult(t)
	s := &Set{
		IgnoreUnfixed: true,
		Ignores:       []*IgnoreFile{mustIgnore(t, "bulwarkignore.yaml")},
		VEX:           mustVEX(t, "legacy-v0.0.2.openvex.json"),
	}
	s.Apply(res, date("2026-07-01T00:00:00Z"))
	for _, f := range res.Suppressed {
		if f.Vulnerability.ID == "RUSTSEC-2021-0045" && f.Suppression.Kind != KindIgnoreFile {
			t.Errorf("adtensor suppressed by %q, want the ignore file", f.Suppression.Kind)
		}
	}
	if len(res.Findings)+len(res.Suppressed) != len(loadResult(t).Findings) {
		t.Error("findings were lost or duplicated")
	}
}

func TestEvaluate(t *testing.T) {
	res := loadResult(t)
	count := func(min vulndb.Severity) int {
		n := 0
		for _, f := range res.Findings {
			if f.Vulnerability.Severity >= min {
				n++
			}
		}
		return n
	}
	for _, failOn := range []vulndb.Severity{vulndb.SeverityUnknown, vulndb.SeverityLow, vulndb.SeverityMedium, vulndb.SeverityHigh, vulndb.SeverityCritical} {
		v := Evaluate(res, failOn)
		want := count(failOn)
		if v.Failed != (want > 0) || len(v.Findings) != want {
			t.Errorf("fail-on %s: failed %v with %d findings, want %d", failOn, v.Failed, len(v.Findings), want)
		}
		for i := 1; i < len(v.Findings); i++ {
			if v.Findings[i].Severity > v.Findings[i-1].Severity {
				t.Errorf("fail-on %s: reasons not most severe first", failOn)
			}
		}
		if v.Failed && !strings.HasPrefix(v.Reason, strconv.Itoa(want)+" finding") {
			t.Errorf("fail-on %s: reason %q", failOn, v.Reason)
		}
	}
	v := Evaluate(res, vulndb.SeverityCritical)
	if !strings.Contains(v.Reason, "RUSTSEC-2021-0003 (CRITICAL) in smallvec 1.6.0") {
		t.Errorf("reason %q does not name the finding", v.Reason)
	}
	// Suppressing the critical findings passes a critical gate.
	s := &Set{Ignores: []*IgnoreFile{mustIgnore(t, "bulwarkignore.yaml")}, VEX: mustVEX(t, "image.openvex.json")}
	s.Apply(res, date("2026-07-01T00:00:00Z"))
	if v := Evaluate(res, vulndb.SeverityCritical); v.Failed {
		t.Errorf("gate failed after suppression: %s", v.Reason)
	}
	if v := Evaluate(&scan.Result{}, vulndb.SeverityUnknown); v.Failed {
		t.Error("an empty result failed the gate")
	}
}

func TestLoadErrors(t *testing.T) {
	s := &Set{}
	if err := s.LoadIgnoreFile(filepath.Join("testdata", "does-not-exist.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("CVE-2023-0001\n", MaxIgnoreFileSize/14+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadIgnoreFile(big); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized file: %v", err)
	}
}

// TestGoVEXExamples runs the OpenVEX reference implementation's own example
// documents (testdata/vex/go-vex, from github.com/openvex/go-vex v0.2.9):
// the v0.2.0 demo about an alpine image's libssl3/libcrypto3, and a v0.0.1
// document with plain-string products.
func TestGoVEXExamples(t *testing.T) {
	docs := mustVEX(t, "go-vex/v0.0.1.json", "go-vex/v0.2.0.json", "go-vex/v020-1.vex.json")
	if got := len(docs[1].Statements); got != 5 {
		t.Fatalf("v0.2.0.json: %d statements", got)
	}
	pkg := func(name, purl string) inventory.Package {
		return inventory.Package{Name: name, Version: "3.0.8-r3", Type: "apk", Ecosystem: "Alpine:v3.17", PURL: purl}
	}
	libssl := pkg("libssl3", "pkg:apk/alpine/libssl3@3.0.8-r3?arch=x86_64&distro=alpine-3.17.3")
	libcrypto := pkg("libcrypto3", "pkg:apk/alpine/libcrypto3@3.0.8-r3?arch=x86_64&distro=alpine-3.17.3")
	other := pkg("openssl", "pkg:apk/alpine/openssl@3.0.8-r3?arch=x86_64&distro=alpine-3.17.3")
	git := inventory.Package{Name: "git", Version: "2.39.0-r1", Type: "apk", PURL: "pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64"}
	gitArm := git
	gitArm.PURL = "pkg:apk/wolfi/git@2.39.0-r1?arch=aarch64"
	finding := func(id string, p inventory.Package) scan.Finding {
		return scan.Finding{Match: vulndb.Match{Vulnerability: &vulndb.Vulnerability{ID: id, Severity: vulndb.SeverityHigh}}, Package: p}
	}
	newResult := func(digest string) *scan.Result {
		return &scan.Result{
			Target: scan.Target{Kind: "image", Name: "alpine", Digest: digest},
			Findings: []scan.Finding{
				finding("CVE-2023-1255", libssl),                                   // fixed
				finding("CVE-2023-3446", libcrypto),                                // not_affected
				finding("CVE-2023-1255", other),                                    // not a listed subcomponent
				finding("CVE-2023-0464", libssl),                                   // no statement
				finding("CVE-2023-12345", git),                                     // v0.0.1: fixed for x86_64
				finding("CVE-2023-12345", gitArm),                                  // and armv7, not aarch64
				finding("CVE-9876-54321", pkg("bash", "pkg:apk/wolfi/bash@1.0.0")), // under_investigation
			},
		}
	}
	type key struct{ ID, PURL string }
	keys := func(fs []scan.Finding) []key {
		var out []key
		for _, f := range fs {
			out = append(out, key{f.Vulnerability.ID, f.Package.PURL})
		}
		return out
	}
	res := newResult("sha256:124c7d2707904eea7431fffe91522a01e5a861a624ee31d03372cc1d138a3126")
	(&Set{VEX: docs}).Apply(res, time.Time{})
	want := []key{
		{"CVE-2023-1255", libssl.PURL},
		{"CVE-2023-3446", libcrypto.PURL},
		{"CVE-2023-12345", git.PURL},
	}
	if diff := cmp.Diff(want, keys(res.Suppressed)); diff != "" {
		t.Errorf("suppressed (-want +got):\n%s", diff)
	}
	if got := res.Suppressed[1].Suppression.Reason; got != "not_affected: vulnerable_code_not_present: affected functions were removed before packaging" {
		t.Errorf("reason %q", got)
	}
	// Another image: only the package-level v0.0.1 statement applies.
	res = newResult("sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
	(&Set{VEX: docs}).Apply(res, time.Time{})
	if diff := cmp.Diff([]key{{"CVE-2023-12345", git.PURL}}, keys(res.Suppressed)); diff != "" {
		t.Errorf("other image: suppressed (-want +got):\n%s", diff)
	}
}
