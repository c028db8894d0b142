package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-security/bulwark/internal/testimage"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/scan"
)

// These tests run the real CLI in-process (Main with an Env of buffers) on
// real inputs: the committed demo image and the subsets of real advisory
// databases beside it (internal/demo/data), images built by
// internal/testimage from real Debian, Go and npm packages, and
// go-containerregistry's in-process registry. Nothing is faked.

// result is one in-process run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// runOpts are the parts of Env a test may set.
type runOpts struct {
	env   map[string]string
	stdin string
}

func run(t testing.TB, args ...string) result {
	t.Helper()
	return runWith(t, runOpts{}, args...)
}

func runWith(t testing.TB, o runOpts, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), Env{
		Version: "test",
		Args:    args,
		Stdin:   strings.NewReader(o.stdin),
		Stdout:  &stdout,
		Stderr:  &stderr,
		Getenv:  func(k string) string { return o.env[k] },
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// want fails the test unless the run exited with code; it shows stderr,
// which is where the CLI explains itself.
func (r result) want(t testing.TB, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstderr:\n%s\nstdout (first 2000 bytes):\n%.2000s", r.code, code, r.stderr, r.stdout)
	}
	return r
}

// parseResult decodes a --format json report.
func parseResult(t testing.TB, data string) *scan.Result {
	t.Helper()
	var res scan.Result
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields() // the documented schema is what is printed
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("parse JSON report: %v\n%.2000s", err, data)
	}
	return &res
}

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := testimage.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// sharedVulnData is ../shared/vulndata beside the repository (real
// advisory database snapshots); tests needing it skip when it is absent.
func sharedVulnData(t testing.TB, file string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "..", "shared", "vulndata", file)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real advisory data %s not available (%v): it lives in ../shared/vulndata beside the repository", file, err)
	}
	return p
}

// demoImage is the committed demo image: real Debian package metadata, real
// Go binaries built with old module versions, real npm package.json files.
func demoImage(t testing.TB) string {
	t.Helper()
	return "docker-archive:" + filepath.Join(repoRoot(t), "internal", "demo", filepath.FromSlash(demo.ImagePath))
}

func demoDBFile(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "internal", "demo", filepath.FromSlash(demo.DBDir), name)
}

// dbCache holds databases imported once per test binary, by their sources.
var dbCache struct {
	sync.Mutex
	root string
	dirs map[string]string
}

// importedDB imports the given advisory files with `bulwark db import` into
// a database shared by the tests that ask for the same files, and returns
// its directory. Tests must not write to it.
func importedDB(t testing.TB, files ...string) string {
	t.Helper()
	key := strings.Join(files, "\x00")
	dbCache.Lock()
	defer dbCache.Unlock()
	if d, ok := dbCache.dirs[key]; ok {
		return d
	}
	if dbCache.root == "" {
		root, err := os.MkdirTemp("", "bulwark-cli-test-db-")
		if err != nil {
			t.Fatal(err)
		}
		dbCache.root, dbCache.dirs = root, map[string]string{}
	}
	dir := filepath.Join(dbCache.root, fmt.Sprint(len(dbCache.dirs)))
	r := run(t, append([]string{"db", "import", "--db-dir", dir}, files...)...)
	if r.code != 0 {
		t.Fatalf("db import %v: exit %d\n%s", files, r.code, r.stderr)
	}
	dbCache.dirs[key] = dir
	return dir
}

// demoDB is the database the demo imports: the bundled subsets of the Go
// vulnerability database, the Node.js security WG, CISA KEV and CISA
// vulnrichment.
func demoDB(t testing.TB) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repoRoot(t), "internal", "demo", filepath.FromSlash(demo.DBDir)))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), ".md") {
			files = append(files, demoDBFile(t, e.Name()))
		}
	}
	return importedDB(t, files...)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dbCache.root != "" {
		os.RemoveAll(dbCache.root)
	}
	os.Exit(code)
}

// newRegistry serves go-containerregistry's in-process registry, wrapped by
// wrap when given, and returns its host:port.
func newRegistry(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushLayout pushes the single image of an OCI layout directory to
// host/repo:tag and returns the reference and the manifest digest.
func pushLayout(t testing.TB, dir, ref string, opts ...remote.Option) (string, v1.Hash) {
	t.Helper()
	img := layoutImage(t, dir)
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, append(opts, remote.WithContext(t.Context()))...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, d
}

func layoutImage(t testing.TB, dir string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("open OCI layout %s: %v", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("OCI layout %s has %d manifests, want 1", dir, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// unpackImage writes the flattened file system of the OCI layout's image
// (whiteouts applied by go-containerregistry's mutate.Extract, an
// implementation independent of Bulwark's) below dir: directories, regular
// files and symlinks; hard links become copies. Entries escaping dir are an
// error: the test images hold none.
func unpackImage(t testing.TB, layoutDir, dir string) {
	t.Helper()
	rc := mutate.Extract(layoutImage(t, layoutDir))
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("unpack: %v", err)
		}
		clean := path.Clean("/" + hdr.Name)
		if clean == "/" {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, 0o755)
		case tar.TypeReg:
			err = writeFile(dst, tr, os.FileMode(hdr.Mode).Perm()|0o200)
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, dst)
		case tar.TypeLink:
			var src *os.File
			src, err = os.Open(filepath.Join(dir, filepath.FromSlash(path.Clean("/"+hdr.Linkname))))
			if err == nil {
				err = writeFile(dst, src, 0o644)
				src.Close()
			}
		}
		if err != nil {
			t.Fatalf("unpack %s: %v", hdr.Name, err)
		}
	}
}

func writeFile(dst string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// findingKey identifies a finding independently of the order and of where
// the package was found.
type findingKey struct{ ID, Type, Name, Version string }

func findingSet(fs []scan.Finding) map[findingKey]int {
	m := map[findingKey]int{}
	for _, f := range fs {
		m[findingKey{f.Vulnerability.ID, f.Package.Type, f.Package.Name, f.Package.Version}]++
	}
	return m
}
