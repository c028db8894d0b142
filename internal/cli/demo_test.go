package cli

import (
	"archive/zip"
	"encoding/json"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/scan"
)

// kevIDs reads the CVE IDs of a CISA KEV catalogue.
func kevIDs(t testing.TB, file string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cat struct {
		Vulnerabilities []struct {
			CVE string `json:"cveID"`
		} `json:"vulnerabilities"`
	}
	if err := json.Unmarshal(data, &cat); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, v := range cat.Vulnerabilities {
		ids[v.CVE] = true
	}
	if len(ids) == 0 {
		t.Fatalf("%s lists no vulnerabilities", file)
	}
	return ids
}

// osvFixed reads, from an OSV record inside a zip, the "fixed" versions of
// the ranges affecting module.
func osvFixed(t testing.TB, zipFile, id, module string) []string {
	t.Helper()
	zr, err := zip.OpenReader(zipFile)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if path.Base(f.Name) != id+".json" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Affected []struct {
				Package struct{ Name string }
				Ranges  []struct {
					Events []map[string]string
				}
			}
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatal(err)
		}
		var fixed []string
		for _, a := range rec.Affected {
			if a.Package.Name != module {
				continue
			}
			for _, r := range a.Ranges {
				for _, e := range r.Events {
					if v, ok := e["fixed"]; ok {
						fixed = append(fixed, v)
					}
				}
			}
		}
		return fixed
	}
	t.Fatalf("%s not in %s", id, zipFile)
	return nil
}

// TestDemoJSON runs `bulwark demo --format json`: the bundled real
// advisories imported into a temporary database and the bundled demo image
// scanned, all in-process.
func TestDemoJSON(t *testing.T) {
	r := run(t, "demo", "--format", "json").want(t, ExitOK)
	if !strings.Contains(r.stderr, "importing") {
		t.Errorf("demo does not say what it imports on stderr:\n%s", r.stderr)
	}
	res := parseResult(t, r.stdout)

	if res.SchemaVersion != scan.SchemaVersion || res.Target.Kind != "image" || res.DB == nil || res.DB.Vulnerabilities == 0 {
		t.Errorf("schema %d, target kind %q, db %+v", res.SchemaVersion, res.Target.Kind, res.DB)
	}
	if res.OS == nil || res.OS.ID != "debian" || res.OS.VersionID != "12" || res.OS.Codename != "bookworm" {
		t.Fatalf("OS = %+v, want Debian 12 (bookworm)", res.OS)
	}
	if len(res.Errors) > 0 {
		t.Errorf("the demo image scans with errors: %+v", res.Errors)
	}

	byName := map[string]inventory.Package{}
	types := map[string]int{}
	for _, p := range res.Packages {
		types[p.Type]++
		if p.Type == inventory.TypeDeb {
			byName[p.Name] = p
			if p.SourceName == "" || p.SourceVersion == "" || p.Ecosystem != "Debian:12" ||
				!strings.Contains(p.PURL, "distro=debian-12") || p.Location != "var/lib/dpkg/status" || p.Layer == "" {
				t.Errorf("dpkg package %s: source %q %q, ecosystem %q, purl %q, location %q, layer %q",
					p.Name, p.SourceName, p.SourceVersion, p.Ecosystem, p.PURL, p.Location, p.Layer)
			}
		}
	}
	for bin, src := range map[string]string{"libssl3": "openssl", "libc6": "glibc", "zlib1g": "zlib", "python3-urllib3": "python-urllib3", "liblog4j2-java": "apache-log4j2"} {
		if got := byName[bin].SourceName; got != src {
			t.Errorf("dpkg %s: source package %q, want %q", bin, got, src)
		}
	}
	// The demo image's layers: dpkg status, two Go binaries, node_modules.
	if types[inventory.TypeDeb] < 20 || types[inventory.TypeGolang] < 4 || types[inventory.TypeNPM] < 100 {
		t.Errorf("package counts by type: %v", types)
	}

	kev := kevIDs(t, demoDBFile(t, "cisa-kev.json"))
	goZip := demoDBFile(t, "golang-vulndb.zip")
	var kevFindings, stdlib int
	seen := map[string]bool{}
	for _, f := range res.Findings {
		v := f.Vulnerability
		// KEV is marked exactly when the catalogue lists the ID or an alias.
		inKEV := kev[v.ID] || slices.ContainsFunc(v.Aliases, func(a string) bool { return kev[a] })
		if inKEV != (v.KEV != nil) {
			t.Errorf("%s (aliases %v): KEV marked %v, catalogue lists it: %v", v.ID, v.Aliases, v.KEV != nil, inKEV)
		}
		if v.KEV != nil {
			kevFindings++
			if v.KEV.DateAdded == "" {
				t.Errorf("%s: KEV entry without dateAdded", v.ID)
			}
		}
		if f.Package.Type == inventory.TypeDeb {
			t.Errorf("finding %s on dpkg package %s: the demo database holds no Debian advisories", v.ID, f.Package.Name)
		}
		if f.InstalledVersion == "" || f.MatchedBy == "" || f.Package.PURL == "" {
			t.Errorf("%s on %s: installed %q, matchedBy %q, purl %q", v.ID, f.Package.Name, f.InstalledVersion, f.MatchedBy, f.Package.PURL)
		}
		if f.Package.Name == "stdlib" {
			stdlib++
			if f.InstalledVersion != "1.21.0" {
				t.Errorf("stdlib finding %s: installed version %q, want 1.21.0 (the demo binaries' go1.21.0)", v.ID, f.InstalledVersion)
			}
		}
		seen[f.Package.Name+" "+v.ID] = true
		switch {
		case f.Package.Name == "golang.org/x/text" && v.ID == "GO-2022-1059":
			want := osvFixed(t, goZip, v.ID, "golang.org/x/text")
			if len(want) == 0 || !slices.Equal(f.FixedVersions, want) {
				t.Errorf("GO-2022-1059 fixed versions %v, the OSV record says %v", f.FixedVersions, want)
			}
			if !slices.Contains(v.Aliases, "CVE-2022-32149") {
				t.Errorf("GO-2022-1059 aliases %v lack CVE-2022-32149", v.Aliases)
			}
		case f.Package.Name == "lodash":
			if f.Package.Version != "4.17.15" || len(f.FixedVersions) == 0 {
				t.Errorf("lodash finding %s: version %s, fixed %v", v.ID, f.Package.Version, f.FixedVersions)
			}
		}
	}
	if !seen["golang.org/x/text GO-2022-1059"] {
		t.Error("no GO-2022-1059 finding for golang.org/x/text v0.3.7")
	}
	if stdlib == 0 {
		t.Error("no Go standard library findings for go1.21.0 binaries")
	}
	if !slices.ContainsFunc(res.Findings, func(f scan.Finding) bool { return f.Package.Name == "lodash" }) {
		t.Error("no lodash finding")
	}
	if kevFindings == 0 {
		t.Error("no finding is marked as known exploited, although the catalogue lists CVE-2019-5786 (electron)")
	}
	// Findings are ordered by severity, highest first.
	if !slices.IsSortedFunc(res.Findings, func(a, b scan.Finding) int { return int(b.Vulnerability.Severity) - int(a.Vulnerability.Severity) }) {
		t.Error("findings are not ordered by severity")
	}
}

// TestDemoTableDefault: the demo's default output is the table.
func TestDemoTableDefault(t *testing.T) {
	r := run(t, "demo").want(t, ExitOK)
	for _, want := range []string{"CRITICAL", "GO-2022-1059", "lodash"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo table lacks %q", want)
		}
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Error("the table has ANSI escapes although stdout is not a terminal")
	}
}
