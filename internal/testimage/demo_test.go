package testimage

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/osv-scalibr/semantic"
)

// Tests of the committed internal/demo/data: the image holds what the README
// demo relies on, and the database holds only unmodified real records.

func demoDir(t *testing.T) string {
	t.Helper()
	root, err := RepoRoot()
	must(t, err)
	return filepath.Join(root, "internal", "demo", "data")
}

func demoImagePath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(demoDir(t), DemoImageFile)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("committed demo image missing (regenerate: go run ./internal/testimage/cmd/gen-demo): %v", err)
	}
	return p
}

func TestDemoImage(t *testing.T) {
	p := demoImagePath(t)
	fi, err := os.Stat(p)
	must(t, err)
	if fi.Size() > 8<<20 {
		t.Errorf("demo image is %d bytes; keep the committed demo small", fi.Size())
	}
	c, err := InspectDemoImage(p)
	must(t, err)
	if len(c.Layers) != 3 {
		t.Errorf("%d layers, want os, go, npm", len(c.Layers))
	}

	// Go: stripped binaries of the go-vuln programs, old module versions.
	var bins []string
	for n := range c.GoBinaries {
		bins = append(bins, n)
	}
	sort.Strings(bins)
	var want []string
	for _, n := range demoGoPrograms {
		want = append(want, "usr/local/bin/"+n)
	}
	if diff := cmp.Diff(want, bins); diff != "" {
		t.Errorf("Go binaries (-want +got):\n%s", diff)
	}
	files, err := readImageFiles(p, want...)
	must(t, err)
	for _, n := range want {
		checkGoBinary(t, n, files[n].data, true)
	}

	// npm: package.json files only, the pinned versions.
	pins, err := NPMPackages()
	must(t, err)
	got := map[string]string{}
	for _, pk := range c.NPM {
		if path.Dir(path.Dir(pk.Path)) == "app/node_modules" || path.Dir(path.Dir(path.Dir(pk.Path))) == "app/node_modules" {
			got[pk.Name] = pk.Version
		}
	}
	for n, v := range pins {
		if got[n] != v {
			t.Errorf("npm %s = %q, want %s", n, got[n], v)
		}
	}
	if len(c.NPM) < 50 {
		t.Errorf("%d npm packages, want the whole tree", len(c.NPM))
	}
	for name, h := range c.Files {
		if strings.HasPrefix(name, "app/") && h.Typeflag == tar.TypeReg && path.Base(name) != "package.json" {
			t.Errorf("%s: the demo's npm layer must hold package.json files only", name)
		}
	}

	// Debian: a real status subset and os-release.
	dpkg := map[string]DemoPackage{}
	for _, pk := range c.Dpkg {
		dpkg[pk.Name] = pk
	}
	for _, n := range []string{"libc6", "liblog4j2-java", "python3-urllib3", "zlib1g"} {
		if dpkg[n].Version == "" {
			t.Errorf("dpkg status lacks %s", n)
		}
	}
	if dpkg["liblog4j2-java"].Source != "apache-log4j2" || dpkg["libc6"].Source != "glibc" {
		t.Errorf("source packages: %+v %+v", dpkg["liblog4j2-java"], dpkg["libc6"])
	}
	if c.OSRelease["ID"] != "debian" || c.OSRelease["VERSION_ID"] != "12" {
		t.Errorf("os-release %v", c.OSRelease)
	}
	if h := c.Files["etc/os-release"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "../usr/lib/os-release" {
		t.Errorf("etc/os-release: %+v", h)
	}

	img, err := tarball.ImageFromPath(p, nil)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	if cf.Config.Labels["org.opencontainers.image.description"] != demoLabel || !cf.Created.Time.Equal(epoch) {
		t.Errorf("config: labels %v, created %v", cf.Config.Labels, cf.Created)
	}
}

// demoSources locates the sources of the demo database, skipping when they
// are not on this machine.
func demoSources(t *testing.T) (vulndata, vulndbZip string) {
	t.Helper()
	vd, err := VulnDataDir()
	if errors.Is(err, ErrNoVulnData) {
		t.Skipf("cannot compare the demo database with its sources: %v", err)
	}
	must(t, err)
	z, err := downloadVulnDB(context.Background())
	if err != nil {
		t.Skipf("cannot compare the demo database with the Go vulndb module (needs the Go module proxy): %v", err)
	}
	return vd, z
}

// compareZipEntries checks every entry of the demo zip is an unmodified
// entry of the source zip (same header fields, same compressed bytes, same
// content) and returns the entries by name.
func compareZipEntries(t *testing.T, demo, src string) map[string]*zip.File {
	t.Helper()
	dz, err := zip.OpenReader(demo)
	must(t, err)
	t.Cleanup(func() { dz.Close() })
	sz, err := zip.OpenReader(src)
	must(t, err)
	t.Cleanup(func() { sz.Close() })
	byName := map[string]*zip.File{}
	for _, f := range sz.File {
		byName[f.Name] = f
	}
	out := map[string]*zip.File{}
	for _, f := range dz.File {
		if _, dup := out[f.Name]; dup {
			t.Errorf("%s: duplicate entry %s", demo, f.Name)
		}
		out[f.Name] = f
		s, ok := byName[f.Name]
		if !ok {
			t.Errorf("%s: entry %s is not in %s", filepath.Base(demo), f.Name, src)
			continue
		}
		if f.CRC32 != s.CRC32 || f.UncompressedSize64 != s.UncompressedSize64 || f.Method != s.Method {
			t.Errorf("%s: header differs from the source", f.Name)
		}
		if !bytes.Equal(zipRaw(t, f), zipRaw(t, s)) {
			t.Errorf("%s: compressed bytes differ from the source", f.Name)
		}
		if !bytes.Equal(zipContent(t, f), zipContent(t, s)) {
			t.Errorf("%s: content differs from the source", f.Name)
		}
	}
	return out
}

func zipRaw(t *testing.T, f *zip.File) []byte {
	t.Helper()
	r, err := f.OpenRaw()
	must(t, err)
	data, err := io.ReadAll(r)
	must(t, err)
	return data
}

func zipContent(t *testing.T, f *zip.File) []byte {
	t.Helper()
	data, err := readZipFile(f, 16<<20)
	must(t, err)
	return data
}

func TestDemoDBHoldsUnmodifiedRecords(t *testing.T) {
	vulndata, vulndbZip := demoSources(t)
	db := filepath.Join(demoDir(t), DemoDBDir)
	c, err := InspectDemoImage(demoImagePath(t))
	must(t, err)

	// Go: unmodified, and complete for the demo's modules.
	goFiles := compareZipEntries(t, filepath.Join(db, DemoGoVulnDBZip), vulndbZip)
	modules := map[string]bool{"stdlib": true, "toolchain": true}
	for _, bi := range c.GoBinaries {
		for _, d := range bi.Deps {
			modules[d.Path] = true
		}
	}
	cves := map[string]bool{}
	src, err := zip.OpenReader(vulndbZip)
	must(t, err)
	defer src.Close()
	var records, relevant int
	for _, f := range src.File {
		if !goRecordRE.MatchString(f.Name) {
			continue
		}
		var h osvHead
		must(t, json.Unmarshal(zipContent(t, f), &h))
		_, kept := goFiles[f.Name]
		need := h.Withdrawn != ""
		for _, a := range h.Affected {
			need = need || modules[a.Package.Name]
		}
		if need && !kept {
			t.Errorf("%s names a demo module (or is withdrawn) but is not in the demo database", h.ID)
		}
		if need {
			relevant++
		}
		if kept {
			records++
			for _, a := range h.Aliases {
				if cveIDRE.MatchString(a) {
					cves[a] = true
				}
			}
		}
	}
	if records < relevant+200 || records > 2000 {
		t.Errorf("demo Go database: %d records (%d relevant); want a few hundred more than the relevant ones", records, relevant)
	}
	for _, extra := range []string{"LICENSE", "README.md"} {
		found := false
		for n := range goFiles {
			found = found || path.Base(n) == extra
		}
		if !found {
			t.Errorf("Go database lacks the module's %s (licence statement)", extra)
		}
	}

	// npm: unmodified, exactly the records of the demo's packages.
	npmFiles := compareZipEntries(t, filepath.Join(db, DemoNodejsZip), filepath.Join(vulndata, srcNodejsZip))
	names := map[string]bool{}
	for _, p := range c.NPM {
		names[p.Name] = true
	}
	nsrc, err := zip.OpenReader(filepath.Join(vulndata, srcNodejsZip))
	must(t, err)
	defer nsrc.Close()
	var npmRecords int
	for _, f := range nsrc.File {
		if !nodejsNPMRE.MatchString(f.Name) {
			continue
		}
		var r struct {
			ModuleName string   `json:"module_name"`
			CVEs       []string `json:"cves"`
		}
		must(t, json.Unmarshal(zipContent(t, f), &r))
		_, kept := npmFiles[f.Name]
		if kept != names[r.ModuleName] {
			t.Errorf("%s (%s): kept %v, demo package %v", f.Name, r.ModuleName, kept, names[r.ModuleName])
		}
		if kept {
			npmRecords++
			for _, c := range r.CVEs {
				cves[c] = true
			}
		}
	}
	if _, ok := npmFiles["LICENSE.md"]; !ok || npmRecords == 0 {
		t.Errorf("npm database: %d records, LICENSE.md kept %v", npmRecords, ok)
	}

	// CVE 5: unmodified, exactly the aliased CVEs the source has.
	cveFiles := compareZipEntries(t, filepath.Join(db, DemoCVE5Zip), filepath.Join(vulndata, srcCVE5Zip))
	csrc, err := zip.OpenReader(filepath.Join(vulndata, srcCVE5Zip))
	must(t, err)
	defer csrc.Close()
	var cve5 int
	for _, f := range csrc.File {
		m := cve5RecordRE.FindStringSubmatch(f.Name)
		if m == nil {
			continue
		}
		if _, kept := cveFiles[f.Name]; kept != cves[m[1]] {
			t.Errorf("CVE 5 %s: kept %v, aliased %v", m[1], kept, cves[m[1]])
		}
		if cves[m[1]] {
			cve5++
		}
	}
	if cve5 == 0 {
		t.Errorf("no CVE 5 records for %d CVEs", len(cves))
	}

	// KEV: same catalogue shape, entries byte for byte, exactly the
	// aliased CVEs.
	kevSrc, err := os.ReadFile(filepath.Join(vulndata, srcKEV))
	must(t, err)
	kevDemo, err := os.ReadFile(filepath.Join(db, DemoKEVJSON))
	must(t, err)
	var s, d kevCatalog
	must(t, json.Unmarshal(kevSrc, &s))
	must(t, json.Unmarshal(kevDemo, &d))
	if string(s.Title) != string(d.Title) || string(s.CatalogVersion) != string(d.CatalogVersion) || string(s.DateReleased) != string(d.DateReleased) {
		t.Errorf("KEV header differs from the source")
	}
	if d.Count != len(d.Vulnerabilities) {
		t.Errorf("KEV count %d, entries %d", d.Count, len(d.Vulnerabilities))
	}
	for _, v := range d.Vulnerabilities {
		if !bytes.Contains(kevSrc, v) {
			t.Errorf("KEV entry not byte-identical to the source: %.80s", v)
		}
	}
	var wantKEV, gotKEV []string
	for _, v := range s.Vulnerabilities {
		var e struct{ CVEID string }
		must(t, json.Unmarshal(v, &e))
		if cves[e.CVEID] {
			wantKEV = append(wantKEV, e.CVEID)
		}
	}
	for _, v := range d.Vulnerabilities {
		var e struct{ CVEID string }
		must(t, json.Unmarshal(v, &e))
		gotKEV = append(gotKEV, e.CVEID)
	}
	if diff := cmp.Diff(wantKEV, gotKEV); diff != "" {
		t.Errorf("KEV entries (-want +got):\n%s", diff)
	}
}

// TestDemoShowsGoFindings checks, with ecosystem-correct version comparison,
// that the demo database has records affecting the demo binaries — the
// demo would be pointless otherwise. (Bulwark's matcher is tested in
// internal/vulndb; this only guards the data.)
func TestDemoShowsGoFindings(t *testing.T) {
	c, err := InspectDemoImage(demoImagePath(t))
	must(t, err)
	versions := map[string]string{}
	for _, bi := range c.GoBinaries {
		versions["stdlib"] = strings.TrimPrefix(bi.GoVersion, "go")
		for _, d := range bi.Deps {
			versions[d.Path] = strings.TrimPrefix(d.Version, "v")
		}
	}
	zr, err := zip.OpenReader(filepath.Join(demoDir(t), DemoDBDir, DemoGoVulnDBZip))
	must(t, err)
	defer zr.Close()
	affected := map[string][]string{}
	for _, f := range zr.File {
		if !goRecordRE.MatchString(f.Name) {
			continue
		}
		var rec struct {
			ID        string `json:"id"`
			Withdrawn string `json:"withdrawn"`
			Affected  []struct {
				Package struct{ Name string } `json:"package"`
				Ranges  []struct {
					Events []map[string]string `json:"events"`
				} `json:"ranges"`
			} `json:"affected"`
		}
		must(t, json.Unmarshal(zipContent(t, f), &rec))
		if rec.Withdrawn != "" {
			continue
		}
		for _, a := range rec.Affected {
			v, ok := versions[a.Package.Name]
			if !ok {
				continue
			}
			for _, r := range a.Ranges {
				if inRange(t, v, r.Events) {
					affected[a.Package.Name] = append(affected[a.Package.Name], rec.ID)
				}
			}
		}
	}
	for _, m := range []string{"stdlib", "golang.org/x/net", "golang.org/x/text", "golang.org/x/crypto", "github.com/dgrijalva/jwt-go"} {
		if len(affected[m]) == 0 {
			t.Errorf("no demo record affects %s %s", m, versions[m])
		}
	}
	if len(affected["stdlib"]) < 10 {
		t.Errorf("only %d stdlib records affect go%s", len(affected["stdlib"]), versions["stdlib"])
	}
	t.Logf("records affecting the demo: %d stdlib, %d x/net, %d x/text, %d x/crypto, %d jwt-go",
		len(affected["stdlib"]), len(affected["golang.org/x/net"]), len(affected["golang.org/x/text"]),
		len(affected["golang.org/x/crypto"]), len(affected["github.com/dgrijalva/jwt-go"]))
}

// inRange evaluates an OSV SEMVER range's events for version v.
func inRange(t *testing.T, v string, events []map[string]string) bool {
	t.Helper()
	pv, err := semantic.Parse(v, "Go")
	must(t, err)
	in := false
	for _, e := range events {
		if x, ok := e["introduced"]; ok {
			c, err := pv.CompareStr(x)
			must(t, err)
			if x == "0" || c >= 0 {
				in = true
			}
		}
		if x, ok := e["fixed"]; ok {
			c, err := pv.CompareStr(x)
			must(t, err)
			if c >= 0 {
				in = false
			}
		}
	}
	return in
}

// TestDemoReadmeMatchesImage guards against a README left behind by an
// image regenerated without the generator.
func TestDemoReadmeMatchesImage(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(demoDir(t), demoREADME))
	must(t, err)
	c, err := InspectDemoImage(demoImagePath(t))
	must(t, err)
	for _, l := range c.Layers {
		if !bytes.Contains(readme, []byte(l.Digest[:19])) {
			t.Errorf("README does not list layer %s", l.Digest)
		}
	}
	if !regexp.MustCompile("(?i)debian findings: none").Match(readme) {
		t.Errorf("README must say the Debian part is inventory only")
	}
}

// TestDemoRebuildReproducible rebuilds the demo recipe and compares it with
// the committed image. The Go and npm layers depend only on pinned inputs
// and must be identical; the OS layer depends on the Debian mirror's state
// when the debian image was built, so only its package list is compared.
func TestDemoRebuildReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("rebuilds the demo image (needs the debian image): skipped with -short")
	}
	img := Get(t, "demo")
	built, err := InspectDemoImage(img.DockerArchive)
	must(t, err)
	committed, err := InspectDemoImage(demoImagePath(t))
	must(t, err)
	if len(built.Layers) != len(committed.Layers) {
		t.Fatalf("rebuilt demo has %d layers, committed %d", len(built.Layers), len(committed.Layers))
	}
	for i := 1; i < len(built.Layers); i++ {
		if built.Layers[i].Digest != committed.Layers[i].Digest {
			t.Errorf("layer %d (%s) differs: rebuilt %s, committed %s", i+1, built.Layers[i].CreatedBy, built.Layers[i].Digest, committed.Layers[i].Digest)
		}
	}
	names := func(ps []DemoPackage) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if diff := cmp.Diff(names(committed.Dpkg), names(built.Dpkg)); diff != "" {
		t.Errorf("dpkg packages differ (-committed +rebuilt):\n%s", diff)
	}
	if built.Layers[0].Digest != committed.Layers[0].Digest {
		t.Logf("OS layer differs from the committed one (the Debian mirror moved since it was generated); regenerate with go run ./internal/testimage/cmd/gen-demo")
	}
}
