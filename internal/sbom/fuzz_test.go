package sbom

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode: no input panics, hangs or yields a package without the
// fields every consumer relies on.
func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if filepath.Ext(name) == ".md" || filepath.Base(name) == "npm-project-package-lock.json" {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"operating-system","name":"debian","version":"12"},{"type":"library","name":"a","version":"1","purl":"pkg:deb/debian/a@1"}]}`,
		`{"spdxVersion":"SPDX-2.3","packages":[{"name":"a","SPDXID":"SPDXRef-a","externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:rpm/redhat/a@1?epoch=2"}]}]}`,
		"SPDXVersion: SPDX-2.3\nPackageName: a\nSPDXID: SPDXRef-a\nPackageVersion: 1\nExternalRef: PACKAGE-MANAGER purl pkg:apk/alpine/a@1?distro=3.18\n",
		`<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components><component type="library"><name>a</name><purl>pkg:npm/a@1</purl></component></components></bom>`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxComponents: 10000}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeLimits(bytes.NewReader(data), lim)
		if err != nil {
			if d != nil {
				t.Fatal("Decode returned a result with an error")
			}
			return
		}
		for _, p := range d.Packages {
			if p.Name == "" || p.Version == "" || p.Type == "" || p.PURL == "" || p.Extractor == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}
