package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/testimage"
)

// pkgKey identifies a package independently of layers.
type pkgKey struct{ Type, Name, Version, Location, LocationDetail, OSPackage string }

func pkgSet(ps []inventory.Package) map[pkgKey]int {
	m := map[pkgKey]int{}
	for _, p := range ps {
		m[pkgKey{p.Type, p.Name, p.Version, p.Location, p.LocationDetail, p.OSPackage}]++
	}
	return m
}

// TestScanFSMatchesImage unpacks real test images into a directory and
// checks that `scan fs` finds what `scan image` finds in the image itself.
func TestScanFSMatchesImage(t *testing.T) {
	db := demoDB(t)
	for _, c := range []struct {
		image   string
		minPkgs int
		eco     string // a finding of this type must exist
	}{
		{"go-vuln", 10, inventory.TypeGolang},
		{"npm", 50, inventory.TypeNPM},
	} {
		t.Run(c.image, func(t *testing.T) {
			img := testimage.Get(t, c.image)
			fromImage := parseResult(t, run(t, "scan", "image", "--db-dir", db, "--format", "json", "oci-layout:"+img.OCILayout).want(t, ExitOK).stdout)

			dir := filepath.Join(t.TempDir(), "rootfs")
			unpackImage(t, img.OCILayout, dir)
			fromDir := parseResult(t, run(t, "scan", "fs", "--db-dir", db, "--format", "json", dir).want(t, ExitOK).stdout)

			if fromDir.Target.Kind != "fs" || fromDir.Target.Name != dir {
				t.Errorf("target %+v", fromDir.Target)
			}
			if len(fromImage.Packages) < c.minPkgs {
				t.Fatalf("image scan found %d packages, want >= %d", len(fromImage.Packages), c.minPkgs)
			}
			for _, p := range fromDir.Packages {
				if p.Layer != "" {
					t.Errorf("directory scan recorded layer %q for %s", p.Layer, p.Name)
				}
			}
			if diff := cmp.Diff(pkgSet(fromImage.Packages), pkgSet(fromDir.Packages)); diff != "" {
				t.Errorf("packages differ (-image +fs):\n%s", diff)
			}
			if diff := cmp.Diff(findingSet(fromImage.Findings), findingSet(fromDir.Findings)); diff != "" {
				t.Errorf("findings differ (-image +fs):\n%s", diff)
			}
			var found bool
			for _, f := range fromDir.Findings {
				found = found || f.Package.Type == c.eco
			}
			if !found {
				t.Errorf("no %s finding in the %s image", c.eco, c.image)
			}
		})
	}
}

// TestScanSBOMRoundTrip: an SBOM written by `scan image` and read back by
// `scan sbom` gives the same findings. Bulwark's CycloneDX carries every
// package field the matcher uses in bulwark: properties, so there the
// findings must be identical. SPDX has no place for a Go binary's platform
// (GOOS/GOARCH), so advisories limited to other platforms, which the image
// scan leaves out, may come back; nothing may be lost.
func TestScanSBOMRoundTrip(t *testing.T) {
	db := demoDB(t)
	base := baseline(t)
	if len(base.Findings) == 0 {
		t.Fatal("the baseline scan has no findings")
	}
	for _, c := range []struct {
		format string
		exact  bool
	}{
		{"cyclonedx", true},
		{"spdx", false},
	} {
		t.Run(c.format, func(t *testing.T) {
			sbomFile := filepath.Join(t.TempDir(), "sbom."+c.format+".json")
			run(t, "scan", "image", "--db-dir", db, "--format", c.format, "-o", sbomFile, demoImage(t)).want(t, ExitOK)
			r := run(t, "scan", "sbom", "--db-dir", db, "--format", "json", sbomFile).want(t, ExitOK)
			res := parseResult(t, r.stdout)
			if res.Target.Kind != "sbom" {
				t.Errorf("target kind %q", res.Target.Kind)
			}
			if res.OS == nil || res.OS.ID != base.OS.ID || res.OS.VersionID != base.OS.VersionID {
				t.Errorf("OS %+v, the image scan found %+v", res.OS, base.OS)
			}
			if len(res.Packages) != len(base.Packages) {
				t.Errorf("%d packages from the SBOM, %d in the image", len(res.Packages), len(base.Packages))
			}
			if c.exact {
				platforms := map[pkgKey]string{}
				for _, p := range base.Packages {
					platforms[pkgKey{p.Type, p.Name, p.Version, p.Location, p.LocationDetail, p.OSPackage}] = p.Platform
				}
				for _, p := range res.Packages {
					if want := platforms[pkgKey{p.Type, p.Name, p.Version, p.Location, p.LocationDetail, p.OSPackage}]; p.Platform != want {
						t.Errorf("%s %s in %s: platform %q after the round trip, %q in the image", p.Type, p.Name, p.Location, p.Platform, want)
					}
				}
				if diff := cmp.Diff(findingSet(base.Findings), findingSet(res.Findings)); diff != "" {
					t.Errorf("findings differ (-image +sbom):\n%s", diff)
				}
			} else {
				got, want := findingSet(res.Findings), findingSet(base.Findings)
				for k, n := range want {
					if got[k] < n {
						t.Errorf("%v: %d in the image scan, %d from the SBOM", k, n, got[k])
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok && k.Type != inventory.TypeGolang {
						t.Errorf("%v reported from the SBOM only, on a package whose platform does not matter", k)
					}
				}
			}
			// The same SBOM on stdin.
			data, err := os.ReadFile(sbomFile)
			if err != nil {
				t.Fatal(err)
			}
			r = runWith(t, runOpts{stdin: string(data)}, "scan", "sbom", "--db-dir", db, "--format", "json", "-").want(t, ExitOK)
			if got := parseResult(t, r.stdout); len(got.Findings) != len(res.Findings) {
				t.Errorf("from stdin: %d findings, from the file %d", len(got.Findings), len(res.Findings))
			}
		})
	}
}

// TestScanSBOMKeepsOSPackages: language packages installed by dpkg stay
// attributed to it through a CycloneDX round trip, so the SBOM scan does
// not report the PyPI advisories the image scan rightly leaves out.
func TestScanSBOMKeepsOSPackages(t *testing.T) {
	img := testimage.Get(t, "debian")
	db := importedDB(t, sharedVulnData(t, "pypa-advisory-database.zip"), demoDBFile(t, "cisa-kev.json"))
	sbomFile := filepath.Join(t.TempDir(), "debian.cdx.json")
	run(t, "scan", "image", "--db-dir", db, "--format", "cyclonedx", "-o", sbomFile, "oci-layout:"+img.OCILayout).want(t, ExitOK)
	res := parseResult(t, run(t, "scan", "sbom", "--db-dir", db, "--format", "json", sbomFile).want(t, ExitOK).stdout)
	var pypi int
	for _, p := range res.Packages {
		if p.Type == inventory.TypePyPI {
			pypi++
			if p.OSPackage == "" {
				t.Errorf("pypi %s lost its OS package through the SBOM", p.Name)
			}
		}
	}
	if pypi == 0 {
		t.Error("no PyPI package in the SBOM of the debian image")
	}
	for _, f := range res.Findings {
		if f.Package.Type == inventory.TypePyPI {
			t.Errorf("%s reported on pypi %s after the round trip", f.Vulnerability.ID, f.Package.Name)
		}
	}
}
