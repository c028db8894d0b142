package python

import (
	"archive/zip"
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/testimage"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

func TestRequired(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA", true},
		{"usr/lib/python3/dist-packages/urllib3-1.26.12.egg-info/PKG-INFO", true},
		{"usr/lib/python2.7/wsgiref.egg-info", true},
		{"srv/eggs/x-1.0-py3.7.egg/EGG-INFO/PKG-INFO", true},
		{"usr/lib/python3/dist-packages/urllib3-1.26.12.egg-info/requires.txt", false},
		{"usr/lib/python3/dist-packages/chardet-5.1.0.dist-info/RECORD", false},
		{"app/requirements.txt", false},
		{"app/METADATA", false},
		{"app/PKG-INFO", false}, // an sdist's root: not installed
		{"usr/lib/python3/dist-packages/x.dist-info/METADATA.bak", false},
	}
	ex := NewDistInfo()
	var paths []string
	for _, tt := range tests {
		if got := ex.Required(tt.path, inventory.FileInfo{}); got != tt.want {
			t.Errorf("Required(%q) = %v, want %v", tt.path, got, tt.want)
		}
		paths = append(paths, tt.path)
	}
	inventorytest.CheckRequiredNoAllocs(t, paths, ex)
}

// TestInstalled reads metadata copied from Debian 12's python3-* packages,
// pip-installed wheels and CPython's own egg-info files.
func TestInstalled(t *testing.T) {
	got := inventorytest.Walk(t, NewDistInfo(), filepath.Join("testdata", "root"))
	inventorytest.Golden(t, "root", got)

	type row struct{ Name, Version, PURL string }
	byLoc := make(map[string]inventory.Package)
	for _, p := range got {
		byLoc[p.Location] = p
		if p.Type != inventory.TypePyPI || p.Ecosystem != inventory.EcosystemPyPI || p.Extractor != "language/python/dist-info" {
			t.Errorf("identity fields: %+v", p)
		}
	}
	for loc, want := range map[string]row{
		"usr/lib/python3/dist-packages/PyYAML-6.0.dist-info/METADATA":                        {"pyyaml", "6.0", "pkg:pypi/pyyaml@6.0"},
		"usr/lib/python3/dist-packages/lazr.uri-1.0.6.egg-info/PKG-INFO":                     {"lazr-uri", "1.0.6", "pkg:pypi/lazr-uri@1.0.6"},
		"usr/lib/python3/dist-packages/urllib3-1.26.12.egg-info/PKG-INFO":                    {"urllib3", "1.26.12", "pkg:pypi/urllib3@1.26.12"},
		"usr/lib/python3/dist-packages/cryptography.egg-info/PKG-INFO":                       {"cryptography", "38.0.4", "pkg:pypi/cryptography@38.0.4"},
		"usr/local/lib/python3.11/site-packages/typing_extensions-4.15.0.dist-info/METADATA": {"typing-extensions", "4.15.0", "pkg:pypi/typing-extensions@4.15.0"},
		"opt/python2.7/lib/python2.7/wsgiref.egg-info":                                       {"wsgiref", "0.1.2", "pkg:pypi/wsgiref@0.1.2"},
		"srv/eggs/my_test_package-1.0-py3.7.egg/EGG-INFO/PKG-INFO":                           {"my-test-package", "1.0", "pkg:pypi/my-test-package@1.0"},
	} {
		p := byLoc[loc]
		if diff := cmp.Diff(want, row{p.Name, p.Version, p.PURL}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", loc, diff)
		}
	}
	for loc, want := range map[string][]string{
		// License-Expression (metadata 2.4).
		"usr/local/lib/python3.11/site-packages/urllib3-2.7.0.dist-info/METADATA": {"MIT"},
		// A whole license text in License: fall back to the classifier.
		"usr/local/lib/python3.11/site-packages/traitlets-5.15.0.dist-info/METADATA": {"BSD License"},
		// A short License header.
		"usr/lib/python3/dist-packages/certifi-2022.9.24.egg-info/PKG-INFO": {"MPL-2.0"},
		// "License: UNKNOWN" and no classifier.
		"srv/eggs/my_test_package-1.0-py3.7.egg/EGG-INFO/PKG-INFO": nil,
	} {
		if diff := cmp.Diff(want, byLoc[loc].Licenses); diff != "" {
			t.Errorf("%s licenses (-want +got):\n%s", loc, diff)
		}
	}
	// Every metadata file in testdata is one package.
	var files int
	_ = filepath.WalkDir(filepath.Join("testdata", "root"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "METADATA" || d.Name() == "PKG-INFO" || strings.HasSuffix(d.Name(), ".egg-info")) {
			files++
		}
		return err
	})
	if len(got) != files {
		t.Errorf("%d packages from %d metadata files", len(got), files)
	}
}

// repoRoot walks up from the package directory to the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := testimage.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestNamesMatchAdvisories checks the naming decision against the real PyPA
// advisory database: each extracted package that has advisories there must
// be found under exactly its Name, and its PURL must equal the records'
// package PURL. It would fail if Name kept the display spelling ("PyYAML",
// "PyJWT").
func TestNamesMatchAdvisories(t *testing.T) {
	zipPath := filepath.Join(repoRoot(t), "..", "shared", "vulndata", "pypa-advisory-database.zip")
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Skipf("PyPA advisory database not available (%v): this test needs ../shared/vulndata", err)
	}
	defer zr.Close()
	names := make(map[string]bool)
	purls := make(map[string]bool)
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".yaml") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Affected []struct {
				Package struct {
					Name, Ecosystem, Purl string
				} `yaml:"package"`
			} `yaml:"affected"`
		}
		if err := yaml.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		for _, a := range rec.Affected {
			if a.Package.Ecosystem == inventory.EcosystemPyPI {
				names[a.Package.Name] = true
				purls[a.Package.Purl] = true
			}
		}
	}
	got := inventorytest.Walk(t, NewDistInfo(), filepath.Join("testdata", "root"))
	matched := 0
	for _, p := range got {
		base, _, _ := strings.Cut(p.PURL, "@")
		if names[p.Name] {
			matched++
			if !purls[base] {
				t.Errorf("%s: records name it but no record has purl %s", p.Name, base)
			}
		} else if purls[base] {
			t.Errorf("%s: records carry purl %s under another name", p.Name, base)
		}
	}
	// pyyaml, pyjwt, jinja2, urllib3, requests, cryptography, idna, certifi
	// have advisories in this snapshot.
	for _, want := range []string{"pyyaml", "pyjwt", "jinja2", "urllib3", "requests", "cryptography"} {
		if !names[want] {
			t.Errorf("advisory database has no %q: the test data no longer proves anything", want)
		}
		if !slices.ContainsFunc(got, func(p inventory.Package) bool { return p.Name == want }) {
			t.Errorf("%s not extracted", want)
		}
	}
	t.Logf("%d of %d packages have PyPA advisories under their Name", matched, len(got))
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"PyYAML":             "pyyaml",
		"typing_extensions":  "typing-extensions",
		"lazr.uri":           "lazr-uri",
		"Foo__Bar-.baz":      "foo-bar-baz",
		"jw.util":            "jw-util",
		"zope.interface":     "zope-interface",
		"charset-normalizer": "charset-normalizer",
	} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHostile(t *testing.T) {
	// want returns the check of a file that must give one package, id.
	want := func(id string) func(testing.TB, inventory.Output, error) {
		return func(t testing.TB, o inventory.Output, _ error) {
			if got := o.Packages[0].Name + "@" + o.Packages[0].Version; got != id {
				t.Errorf("got %q, want %q", got, id)
			}
		}
	}
	inventorytest.RunHostile(t, NewDistInfo(), "x.dist-info/METADATA", []inventorytest.Case{
		{Name: "empty", In: "", WantErr: true},
		{Name: "binary", In: "\x00\x01\x02\xff", WantErr: true},
		{Name: "body only", In: "\nName: a\nVersion: 1\n", WantErr: true},
		{Name: "crlf", In: "Name: a\r\nVersion: 1.0\r\n\r\nbody", Pkgs: 1, Check: want("a@1.0")},
		{Name: "no trailing newline", In: "Name: a\nVersion: 1.0", Pkgs: 1, Check: want("a@1.0")},
		{Name: "case-insensitive", In: "NAME: a\nversion: 1.0\n", Pkgs: 1, Check: want("a@1.0")},
		{Name: "first wins", In: "Name: a\nVersion: 1.0\nName: b\nVersion: 2.0\n", Pkgs: 1, Check: want("a@1.0")},
		{Name: "name in body ignored", In: "Name: a\n\nVersion: 1.0\n", WantErr: true},
		{Name: "bad name", In: "Name: ../../x\nVersion: 1.0\n", WantErr: true},
		{Name: "bad version", In: "Name: a\nVersion: 1.0 rc1\n", WantErr: true},
		{Name: "giant line", In: "Name: a\nDescription: " + strings.Repeat("x", 3<<20) + "\nVersion: 1.0\n", WantErr: true},
		{Name: "giant header block", In: "Name: a\n" + strings.Repeat("Classifier: License :: X\n", 100000) + "Version: 1.0\n", WantErr: true},
		{Name: "whitespace-only continuation is not the end", In: "Name: a\nLicense: x\n        \n        y\nVersion: 1.0\n", Pkgs: 1, Check: want("a@1.0")},
	})
}

// TestReadsHeadersOnly checks that parsing stops at the blank line: the
// reader fails if anything past the headers is requested.
func TestReadsHeadersOnly(t *testing.T) {
	headers := "Metadata-Version: 2.1\nName: a\nVersion: 1.0\n\n"
	in := inventorytest.Input("a.dist-info/METADATA", []byte(headers))
	in.Reader = io.MultiReader(strings.NewReader(headers), failingReader{})
	o, err := NewDistInfo().Extract(context.Background(), in)
	if err != nil || len(o.Packages) != 1 {
		t.Fatalf("got %+v, %v", o, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func FuzzPythonMetadata(f *testing.F) {
	f.Add([]byte("Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0\nLicense: MIT\nClassifier: License :: OSI Approved :: MIT License\n\nbody"))
	f.Add([]byte("Name: a\nLicense: x\n  y\nLicense-Expression: MIT OR Apache-2.0\nVersion: 1\n"))
	f.Add([]byte("Name: a.b_c\r\nVersion: 1!2.0.post1+local\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := inventorytest.Fuzz(t, NewDistInfo(), "x.dist-info/METADATA", in)
		if err != nil {
			return
		}
		if len(o.Packages) != 1 {
			t.Fatalf("%d packages", len(o.Packages))
		}
		p := o.Packages[0]
		if p.Name != NormalizeName(p.Name) || !validName(p.Name) || !validVersion(p.Version) || !strings.HasPrefix(p.PURL, "pkg:pypi/") {
			t.Fatalf("bad package %+v", p)
		}
	})
}

func BenchmarkMetadata(b *testing.B) {
	inventorytest.BenchmarkWalk(b, NewDistInfo(), filepath.Join("testdata", "root"))
}
