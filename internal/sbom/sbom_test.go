package sbom

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

func decodeFile(t testing.TB, name string) *Decoded {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := Decode(f)
	if err != nil {
		t.Fatalf("Decode(%s): %v", name, err)
	}
	return d
}

type nv struct{ Name, Version string }

// lockPackages reads the real project's package-lock.json: the packages npm
// installed, which every SBOM of the project must list.
func lockPackages(t *testing.T) []nv {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "npm-project-package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatal(err)
	}
	var out []nv
	for path, p := range lock.Packages {
		name, ok := strings.CutPrefix(path, "node_modules/")
		if !ok {
			continue // the root project
		}
		out = append(out, nv{name, p.Version})
	}
	slices.SortFunc(out, func(a, b nv) int { return strings.Compare(a.Name, b.Name) })
	if len(out) < 3 {
		t.Fatalf("lock file lists %d packages", len(out))
	}
	return out
}

func TestDecodeRealNPMSBOMs(t *testing.T) {
	want := lockPackages(t)
	// location: whether the SBOM records where each package is (npm's own
	// CycloneDX does not; cyclonedx-npm does from 1.3, as a property).
	cases := []struct {
		file     string
		format   Format
		spec     string
		location bool
	}{
		{"npm-sbom.cdx.json", FormatCycloneDXJSON, "1.5", false},
		{"cyclonedx-npm-1.2.cdx.json", FormatCycloneDXJSON, "1.2", false},
		{"cyclonedx-npm-1.3.cdx.json", FormatCycloneDXJSON, "1.3", true},
		{"cyclonedx-npm-1.4.cdx.json", FormatCycloneDXJSON, "1.4", true},
		{"cyclonedx-npm-1.5.cdx.json", FormatCycloneDXJSON, "1.5", true},
		{"cyclonedx-npm-1.6.cdx.json", FormatCycloneDXJSON, "1.6", true},
		{"cyclonedx-npm-1.2.cdx.xml", FormatCycloneDXXML, "1.2", false},
		{"cyclonedx-npm-1.6.cdx.xml", FormatCycloneDXXML, "1.6", true},
		{"npm-sbom.spdx.json", FormatSPDXJSON, "SPDX-2.3", true},
		{"npm-sbom-2.2.spdx.json", FormatSPDXJSON, "SPDX-2.2", true},
		{"npm-sbom.spdx", FormatSPDXTagValue, "SPDX-2.3", true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			d := decodeFile(t, c.file)
			if d.Format != c.format || d.SpecVersion != c.spec {
				t.Errorf("format %s %s, want %s %s", d.Format, d.SpecVersion, c.format, c.spec)
			}
			var got []nv
			for _, p := range d.Packages {
				got = append(got, nv{p.Name, p.Version})
				if p.Type != inventory.TypeNPM || p.Ecosystem != inventory.EcosystemNPM {
					t.Errorf("%s: type %q ecosystem %q", p.Name, p.Type, p.Ecosystem)
				}
				if !strings.HasPrefix(p.PURL, "pkg:npm/") {
					t.Errorf("%s: purl %q", p.Name, p.PURL)
				}
				if want := "node_modules/" + p.Name; c.location && p.Location != want || !c.location && p.Location != "" {
					t.Errorf("%s: location %q, want its node_modules directory", p.Name, p.Location)
				}
			}
			slices.SortFunc(got, func(a, b nv) int { return strings.Compare(a.Name, b.Name) })
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("packages (-lock file +SBOM):\n%s", diff)
			}
			if d.Subject == nil || d.Subject.Name != "proj" || d.Subject.Version != "1.0.0" {
				t.Errorf("subject %+v, want the project proj 1.0.0", d.Subject)
			}
			if d.OS != nil {
				t.Errorf("OS %+v in an npm SBOM", d.OS)
			}
		})
	}
}

func TestDecodeOSPackagesCycloneDX(t *testing.T) {
	d := decodeFile(t, "os-packages.cdx.json")
	wantOS := &inventory.OS{ID: "debian", VersionID: "12.5", PrettyName: "Debian GNU/Linux 12 (bookworm)"}
	if diff := cmp.Diff(wantOS, d.OS); diff != "" {
		t.Errorf("OS (-want +got):\n%s", diff)
	}
	if d.Subject == nil || d.Subject.Type != "container" {
		t.Errorf("subject %+v", d.Subject)
	}
	type row struct {
		Name, Version, Type, Ecosystem, SourceName, SourceVersion, Arch, Location, LocationDetail, Layer string
	}
	want := []row{
		{"libssl3", "3.0.11-1~deb12u2", "deb", "Debian:12", "openssl", "", "amd64", "var/lib/dpkg/status", "", ""},
		{"libc6", "2.36-9+deb12u4", "deb", "Debian:12", "glibc", "2.36-9+deb12u3", "amd64", "", "", "sha256:1111111111111111111111111111111111111111111111111111111111111111"},
		// No distro qualifier: the SBOM's operating-system component says.
		{"tzdata", "2024a-0+deb12u1", "deb", "Debian:12", "", "", "all", "", "", ""},
		{"libc6", "2.35-0ubuntu3.6", "deb", "Ubuntu:22.04:LTS", "glibc", "", "amd64", "", "", ""},
		// A codename as distro, and a source version in upstream.
		{"bash", "5.2.15-2+b2", "deb", "Debian:12", "", "5.2.15-2", "amd64", "", "", ""},
		// Trivy's apk distro is the bare version.
		{"musl", "1.2.3-r0", "apk", "Alpine:v3.16", "", "", "", "", "", ""},
		{"busybox", "1.36.1-r5", "apk", "Alpine:v3.18", "", "", "x86_64", "", "", ""},
		// RPM: epoch from the qualifier back into the version, source RPM
		// file name split.
		{"openssl-libs", "1:3.0.7-24.el9", "rpm", "Red Hat:enterprise_linux:9::baseos", "openssl", "3.0.7-24.el9", "x86_64", "", "", ""},
		{"bash", "5.1.8-6.el9_1", "rpm", "Rocky Linux:9", "", "", "x86_64", "", "", ""},
		{"curl", "7.76.1-26.el9", "rpm", "AlmaLinux:9", "", "", "x86_64", "", "", ""},
		{"com.example:app", "1.0.0", "maven", "Maven", "", "", "", "app/app.jar", "", ""},
		{"github.com/gin-gonic/gin", "v1.9.0", "golang", "Go", "", "", "", "", "", ""},
		{"stdlib", "go1.21.1", "golang", "Go", "", "", "", "", "", ""},
		{"urllib3", "1.26.5", "pypi", "PyPI", "", "", "", "", "", ""},
		{"smallvec", "1.6.0", "cargo", "crates.io", "", "", "", "", "", ""},
		{"rack", "2.2.3", "gem", "RubyGems", "", "", "", "", "", ""},
		{"Newtonsoft.Json", "12.0.1", "nuget", "NuGet", "", "", "", "", "", ""},
		{"guzzlehttp/guzzle", "7.4.0", "composer", "Packagist", "", "", "", "", "", ""},
		{"@babel/core", "7.22.0", "npm", "npm", "", "", "", "", "", ""},
		// Nested inside app.jar, found after its siblings.
		{"org.apache.logging.log4j:log4j-core", "2.14.1", "maven", "Maven", "", "", "", "app/app.jar", "BOOT-INF/lib/log4j-core-2.14.1.jar", ""},
	}
	var got []row
	for _, p := range d.Packages {
		got = append(got, row{p.Name, p.Version, p.Type, p.Ecosystem, p.SourceName, p.SourceVersion, p.Arch, p.Location, p.LocationDetail, p.Layer})
		if p.Extractor != ExtractorCycloneDX {
			t.Errorf("%s: extractor %q", p.Name, p.Extractor)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	var skipped []string
	for _, s := range d.Skipped {
		skipped = append(skipped, s.Name)
	}
	if diff := cmp.Diff([]string{"no-purl", "actions-checkout", "broken", "unversioned"}, skipped); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if len(d.Warnings) != 0 {
		t.Errorf("warnings %v", d.Warnings)
	}
	for _, p := range d.Packages {
		if p.Name == "org.apache.logging.log4j:log4j-core" && !slices.Equal(p.Licenses, []string{"Apache-2.0"}) {
			t.Errorf("log4j-core licenses %v", p.Licenses)
		}
	}
}

func TestDecodeOSPackagesSPDX(t *testing.T) {
	d := decodeFile(t, "os-packages.spdx.json")
	if d.OS == nil || d.OS.ID != "alpine" || d.OS.VersionID != "3.18.4" {
		t.Fatalf("OS %+v", d.OS)
	}
	if d.Subject == nil || d.Subject.Type != "CONTAINER" {
		t.Errorf("subject %+v, want the described container", d.Subject)
	}
	got := map[string]inventory.Package{}
	for _, p := range d.Packages {
		got[p.Name] = p
	}
	// busybox's PURL has no distro: the OPERATING-SYSTEM package supplies it.
	if p := got["busybox"]; p.Ecosystem != "Alpine:v3.18" || p.Location != "lib/apk/db/installed" || !slices.Equal(p.Licenses, []string{"GPL-2.0-only"}) {
		t.Errorf("busybox %+v", p)
	}
	if p := got["libcrypto3"]; p.Ecosystem != "Alpine:v3.18" || p.SourceName != "openssl" {
		t.Errorf("libcrypto3 %+v", p)
	}
	// SPDX 2.2 spelled the category PACKAGE_MANAGER.
	if p := got["requests"]; p.Ecosystem != "PyPI" || p.Extractor != ExtractorSPDX {
		t.Errorf("requests %+v", p)
	}
	if len(d.Packages) != 3 || len(d.Skipped) != 1 || d.Skipped[0].Name != "vendored-thing" {
		t.Errorf("%d packages, skipped %+v", len(d.Packages), d.Skipped)
	}
}

func TestUnknownReleaseWarns(t *testing.T) {
	doc := `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[
	  {"type":"library","name":"libc6","version":"2.36-9","purl":"pkg:deb/debian/libc6@2.36-9?arch=amd64"},
	  {"type":"library","name":"musl","version":"1.2.4-r2","purl":"pkg:apk/alpine/musl@1.2.4-r2"}]}`
	d, err := Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Packages) != 2 || d.Packages[0].Ecosystem != "" {
		t.Fatalf("packages %+v", d.Packages)
	}
	if len(d.Warnings) != 2 || !strings.Contains(d.Warnings[0], "1 deb packages") {
		t.Errorf("warnings %q", d.Warnings)
	}
}

func TestPackageFromPURL(t *testing.T) {
	cases := []struct {
		purl string
		want inventory.Package
	}{
		{"pkg:npm/%40types/node@20.1.0", inventory.Package{Name: "@types/node", Version: "20.1.0", Type: "npm", Ecosystem: "npm"}},
		{"pkg:maven/org.springframework/spring-core@5.3.0?type=jar", inventory.Package{Name: "org.springframework:spring-core", Version: "5.3.0", Type: "maven", Ecosystem: "Maven"}},
		{"pkg:golang/golang.org/x/net@v0.7.0#http2", inventory.Package{Name: "golang.org/x/net", Version: "v0.7.0", Type: "golang", Ecosystem: "Go"}},
		{"pkg:deb/debian/openssl@3.0.11-1~deb12u2?distro=debian-12", inventory.Package{Name: "openssl", Version: "3.0.11-1~deb12u2", Type: "deb", Ecosystem: "Debian:12"}},
		{"pkg:deb/debian/bash@5.2.15-2?distro=debian-bookworm", inventory.Package{Name: "bash", Version: "5.2.15-2", Type: "deb", Ecosystem: "Debian:12"}},
		{"pkg:deb/ubuntu/bash@5.1-6ubuntu1?distro=ubuntu-23.10", inventory.Package{Name: "bash", Version: "5.1-6ubuntu1", Type: "deb", Ecosystem: "Ubuntu:23.10"}},
		{"pkg:apk/alpine/zlib@1.2.13-r1?distro=alpine-3.18.4", inventory.Package{Name: "zlib", Version: "1.2.13-r1", Type: "apk", Ecosystem: "Alpine:v3.18"}},
		{"pkg:rpm/almalinux/openssl@3.0.7-27.el9?epoch=1&distro=almalinux-9.3", inventory.Package{Name: "openssl", Version: "1:3.0.7-27.el9", Type: "rpm", Ecosystem: "AlmaLinux:9"}},
		{"pkg:rpm/rocky/zlib@1.2.11-40.el9?epoch=0&distro=rocky-9.2", inventory.Package{Name: "zlib", Version: "1.2.11-40.el9", Type: "rpm", Ecosystem: "Rocky Linux:9"}},
	}
	for _, c := range cases {
		got, err := packageFromPURL(c.purl)
		if err != nil {
			t.Errorf("%s: %v", c.purl, err)
			continue
		}
		c.want.PURL = c.purl
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.purl, diff)
		}
	}
	for _, bad := range []string{"", "pkg:", "npm/x@1", "pkg:npm/@1", "pkg:docker/alpine@3.18", "pkg:npm/left-pad", "pkg:npm/%zz@1"} {
		if p, err := packageFromPURL(bad); err == nil {
			t.Errorf("packageFromPURL(%q) = %+v, want an error", bad, p)
		}
	}
}

func TestHostileInput(t *testing.T) {
	deepJSON := strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200)
	deepCDX := `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[` +
		strings.Repeat(`{"type":"library","name":"x","components":[`, 100) +
		strings.Repeat(`]}`, 100) + `]}`
	deepXML := `<bom xmlns="http://cyclonedx.org/schema/bom/1.5">` + strings.Repeat("<components><component>", 100) +
		strings.Repeat("</component></components>", 100) + "</bom>"
	laughs := `<?xml version="1.0"?><!DOCTYPE bom [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` +
		`<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component type="library"><name>&b;</name></component></components></bom>`
	xxe := `<?xml version="1.0"?><!DOCTYPE bom [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		`<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component type="library"><name>&x;</name><purl>pkg:npm/a@1</purl></component></components></bom>`
	cases := []struct {
		name string
		in   string
		want error // nil: any error
	}{
		{"empty", "", ErrUnknownFormat},
		{"whitespace", " \n\t ", ErrUnknownFormat},
		{"text", "hello world", ErrUnknownFormat},
		{"json array", "[1,2,3]", nil},
		{"json other", `{"name":"package.json"}`, ErrUnknownFormat},
		{"truncated cdx", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"libr`, nil},
		{"cdx wrong types", `{"bomFormat":"CycloneDX","specVersion":"1.5","components":{"a":1}}`, nil},
		{"cdx version 2.0", `{"bomFormat":"CycloneDX","specVersion":"2.0"}`, ErrUnsupportedVersion},
		{"cdx json 1.1", `{"bomFormat":"CycloneDX","specVersion":"1.1"}`, ErrUnsupportedVersion},
		{"spdx 3", `{"spdxVersion":"SPDX-3.0"}`, ErrUnsupportedVersion},
		{"spdx broken", `{"spdxVersion":"SPDX-2.3","packages":[{"SPDXID":"nope"}]}`, nil},
		{"tag-value 1.2", "SPDXVersion: SPDX-1.2\nDataLicense: CC0-1.0\n", ErrUnsupportedVersion},
		{"tag-value garbage", "SPDXVersion: SPDX-2.3\nPackageName\n\x00\x01", nil},
		{"deep json", deepJSON, ErrTooDeep},
		{"deep cdx", deepCDX, ErrTooDeep},
		{"deep xml", deepXML, ErrTooDeep},
		{"xml other root", `<project xmlns="http://maven.apache.org/POM/4.0.0"/>`, ErrUnknownFormat},
		{"xml unclosed", `<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components>`, nil},
		{"xml entity bomb", laughs, nil},
		{"xml external entity", xxe, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Decode(strings.NewReader(c.in))
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", d)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), "root:") {
				t.Errorf("error leaks file content: %v", err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "cyclonedx-npm-1.6.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeLimits(bytes.NewReader(data), Limits{MaxBytes: int64(len(data)) - 1}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte over MaxBytes: error %v, want ErrTooLarge", err)
	}
	if _, err := DecodeLimits(bytes.NewReader(data), Limits{MaxBytes: int64(len(data))}); err != nil {
		t.Errorf("exactly MaxBytes: %v", err)
	}
	if _, err := DecodeLimits(bytes.NewReader(data), Limits{MaxComponents: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxComponents 2: error %v, want ErrTooLarge", err)
	}
	// A byte-order mark and leading blank lines are fine.
	d, err := Decode(bytes.NewReader(append([]byte("\xef\xbb\xbf\n\n"), data...)))
	if err != nil || len(d.Packages) == 0 {
		t.Errorf("with BOM: %v", err)
	}
}

// TestNoSharedState: decoding one document does not leak into the next.
func TestNoSharedState(t *testing.T) {
	a := decodeFile(t, "os-packages.cdx.json")
	b := decodeFile(t, "npm-sbom.cdx.json")
	c := decodeFile(t, "os-packages.cdx.json")
	if diff := cmp.Diff(a, c, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("decoding the same file twice differs:\n%s", diff)
	}
	if b.OS != nil {
		t.Error("OS leaked between documents")
	}
}
