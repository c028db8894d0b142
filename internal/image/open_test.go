package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// anonymous resolves every registry to no credentials, so tests never read
// the Docker config of the machine they run on.
var anonymous = authn.NewMultiKeychain()

// newRegistry serves go-containerregistry's in-process registry, optionally
// behind a wrapping handler, and returns its host:port.
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

func push(t testing.TB, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
}

// writeDockerSave writes img the way `docker save` (Docker 25+) does:
// uncompressed layers named by their diff ID, the config by its digest, and
// manifest.json. go-containerregistry's tarball.Write stores gzip'd layers
// instead, so both kinds are tested.
func writeDockerSave(t testing.TB, path string, img v1.Image, tags []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfgName := "blobs/sha256/" + sha(cfg).Hex
	add(cfgName, cfg)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		n := "blobs/sha256/" + sha(b).Hex
		add(n, b)
		names = append(names, n)
	}
	m, err := json.Marshal([]dockerManifestEntry{{Config: cfgName, RepoTags: tags, Layers: names}})
	if err != nil {
		t.Fatal(err)
	}
	add("manifest.json", m)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenSources opens one image from every kind of source and checks
// that each gives the same metadata and the same files.
func TestOpenSources(t *testing.T) {
	img := buildImage(t, "amd64",
		[]te{reg("etc/os-release", "ID=debian\nVERSION_ID=12\n"), reg("var/lib/dpkg/status", "Package: a\n")},
		[]te{reg("var/lib/dpkg/status", "Package: b\n"), whiteout("etc/.wh.os-release")},
	)
	wantDigest, _ := img.Digest()
	wantID, _ := img.ConfigName()
	wantLayers := []Layer{}
	ls, _ := img.Layers()
	for i, l := range ls {
		d, _ := l.Digest()
		diff, _ := l.DiffID()
		size, _ := l.Size()
		mt, _ := l.MediaType()
		wantLayers = append(wantLayers, Layer{Digest: d.String(), DiffID: diff.String(), Size: size,
			MediaType: string(mt), CreatedBy: "layer " + string(rune('A'+i))})
	}

	host := newRegistry(t, nil)
	push(t, host+"/test/img:v1", img)

	dir := t.TempDir()
	ggcrArchive := filepath.Join(dir, "ggcr.tar")
	tag, _ := name.NewTag("test/img:v1")
	if err := tarball.WriteToFile(ggcrArchive, tag, img); err != nil {
		t.Fatal(err)
	}
	saveArchive := filepath.Join(dir, "save.tar")
	writeDockerSave(t, saveArchive, img, []string{"test/img:v1"})
	layoutDir := writeLayoutImage(t, img, "v1")
	ociArchive := filepath.Join(dir, "oci.tar")
	tarDir(t, layoutDir, ociArchive)

	tests := []struct {
		name      string
		ref       string
		digest    string
		repoTags  []string
		docker    bool // layer digests are diff IDs
		savedSize bool // layers stored uncompressed
	}{
		{name: "registry tag", ref: host + "/test/img:v1", digest: wantDigest.String(), repoTags: []string{host + "/test/img:v1"}},
		{name: "registry digest", ref: host + "/test/img@" + wantDigest.String(), digest: wantDigest.String()},
		{name: "docker-archive gzip", ref: PrefixDockerArchive + ggcrArchive, repoTags: []string{"test/img:v1"}, docker: true},
		{name: "docker-archive docker save", ref: PrefixDockerArchive + saveArchive, repoTags: []string{"test/img:v1"}, docker: true, savedSize: true},
		{name: "oci-layout", ref: PrefixOCILayout + layoutDir, digest: wantDigest.String(), repoTags: []string{"v1"}},
		{name: "oci-layout named", ref: PrefixOCILayout + layoutDir + ":v1", digest: wantDigest.String(), repoTags: []string{"v1"}},
		{name: "oci-archive", ref: PrefixOCIArchive + ociArchive, digest: wantDigest.String(), repoTags: []string{"v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im, err := Open(context.Background(), tt.ref, Options{Insecure: true, Keychain: anonymous})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.Digest != tt.digest || im.ID != wantID.String() || im.Platform != "linux/amd64" {
				t.Errorf("digest %q id %q platform %q, want %q %q linux/amd64", im.Digest, im.ID, im.Platform, tt.digest, wantID)
			}
			if diff := cmp.Diff(tt.repoTags, im.RepoTags); diff != "" {
				t.Errorf("repo tags (-want +got):\n%s", diff)
			}
			want := append([]Layer(nil), wantLayers...)
			for i := range want {
				if tt.docker {
					want[i].Digest = want[i].DiffID
					want[i].MediaType = im.Layers[i].MediaType
				}
				if tt.savedSize {
					want[i].Size = im.Layers[i].Size
					if want[i].MediaType != "application/vnd.docker.image.rootfs.diff.tar" {
						t.Errorf("layer %d media type %q, want uncompressed", i, want[i].MediaType)
					}
				}
			}
			if diff := cmp.Diff(want, im.Layers); diff != "" {
				t.Errorf("layers (-want +got):\n%s", diff)
			}
			entries, errs, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
			if err != nil || len(errs) != 0 {
				t.Fatalf("walk: %v %v", err, errs)
			}
			if diff := cmp.Diff([]found{{"var/lib/dpkg/status", 1, "Package: b\n"}}, summarize(entries)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if id, err := im.V1().ConfigName(); err != nil || id != wantID {
				t.Errorf("V1().ConfigName() = %v, %v", id, err)
			}
		})
	}
}

func TestOpenDockerArchiveSelector(t *testing.T) {
	a := buildImage(t, "amd64", []te{reg("which", "a")})
	b := buildImage(t, "amd64", []te{reg("which", "b")})
	path := filepath.Join(t.TempDir(), "multi.tar")
	ta, _ := name.NewTag("test/a:v1")
	tb, _ := name.NewTag("registry.example:5000/test/b:v2")
	if err := tarball.MultiRefWriteToFile(path, map[name.Reference]v1.Image{ta: a, tb: b}); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{"test/a:v1": "a", "registry.example:5000/test/b:v2": "b", "index.docker.io/test/a:v1": "a"} {
		im, err := Open(context.Background(), PrefixDockerArchive+path+":"+sel, Options{})
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		entries, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
		im.Close()
		if err != nil || len(entries) != 1 || entries[0].Value != want {
			t.Errorf("%s: entries %v, err %v; want which=%s", sel, entries, err, want)
		}
	}
	_, err := Open(context.Background(), PrefixDockerArchive+path, Options{})
	if err == nil || !strings.Contains(err.Error(), "holds 2 images") || !strings.Contains(err.Error(), "test/a:v1") {
		t.Errorf("no selector: err = %v, want a list of tags", err)
	}
	_, err = Open(context.Background(), PrefixDockerArchive+path+":nope:v0", Options{})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown tag: err = %v, want ErrNotFound", err)
	}
}

// platformIndex builds a two-platform index (plus an attestation-like
// unknown/unknown entry); each image holds a file "arch".
func platformIndex(t testing.TB) v1.ImageIndex {
	amd := buildImage(t, "amd64", []te{reg("arch", "amd64")})
	arm := buildImage(t, "arm64", []te{reg("arch", "arm64")})
	att := buildImage(t, "unknown", []te{reg("arch", "attestation")})
	return mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
}

func TestOpenPlatforms(t *testing.T) {
	idx := platformIndex(t)
	idxDigest, _ := idx.Digest()
	host := newRegistry(t, nil)
	r, _ := name.ParseReference(host+"/multi:latest", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	layoutDir := t.TempDir()
	if _, err := layout.Write(layoutDir, idx); err != nil {
		t.Fatal(err)
	}
	// The usual shape: index.json → one image index → platform images.
	nestedDir := t.TempDir()
	p, err := layout.Write(nestedDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{host + "/multi:latest", PrefixOCILayout + layoutDir, PrefixOCILayout + nestedDir} {
		for _, tc := range []struct{ platform, want, wantPlatform string }{
			{"", "amd64", "linux/amd64"},
			{"linux/amd64", "amd64", "linux/amd64"},
			{"linux/arm64", "arm64", "linux/arm64"},
			{"linux/arm64/v8", "arm64", "linux/arm64"},
		} {
			im, err := Open(context.Background(), ref, Options{Platform: tc.platform, Insecure: true, Keychain: anonymous})
			if err != nil {
				t.Fatalf("%s %s: %v", ref, tc.platform, err)
			}
			entries, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
			im.Close()
			if err != nil || len(entries) != 1 || entries[0].Value != tc.want || im.Platform != tc.wantPlatform {
				t.Errorf("%s %q: platform %s, entries %v, err %v; want %s", ref, tc.platform, im.Platform, entries, err, tc.want)
			}
			if ref != PrefixOCILayout+layoutDir && im.IndexDigest != idxDigest.String() {
				t.Errorf("%s: index digest %q, want %s", ref, im.IndexDigest, idxDigest)
			}
		}
		_, err := Open(context.Background(), ref, Options{Platform: "linux/s390x", Insecure: true, Keychain: anonymous})
		if !errors.Is(err, ErrNoPlatform) || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64/v8") {
			t.Errorf("%s: err = %v, want ErrNoPlatform listing linux/amd64, linux/arm64/v8", ref, err)
		}
	}

	// A single image of another platform than asked for.
	single := writeLayoutImage(t, buildImage(t, "arm64", []te{reg("a", "a")}), "")
	if _, err := Open(context.Background(), PrefixOCILayout+single, Options{Platform: "linux/amd64"}); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("single arm64 image as linux/amd64: err = %v, want ErrNoPlatform", err)
	}
	if _, err := Open(context.Background(), PrefixOCILayout+single, Options{}); err != nil {
		t.Errorf("single arm64 image, no platform asked: %v", err)
	}
	if _, err := Open(context.Background(), PrefixOCILayout+single, Options{Platform: "linux"}); err == nil {
		t.Error("platform \"linux\": no error")
	}
}

// basicAuth requires alice/s3cret, answering 401 with a Basic challenge
// like a real registry behind basic auth.
func basicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestOpenRegistryAuth(t *testing.T) {
	host := newRegistry(t, basicAuth)
	ref := host + "/private/img:v1"
	push(t, ref, buildImage(t, "amd64", []te{reg("secret", "s")}),
		remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))

	if _, err := Open(context.Background(), ref, Options{Insecure: true, Keychain: anonymous}); err == nil ||
		!strings.Contains(err.Error(), "401") && !strings.Contains(strings.ToLower(err.Error()), "unauthorized") {
		t.Errorf("anonymous: err = %v, want 401", err)
	}
	if _, err := Open(context.Background(), ref, Options{Insecure: true, Username: "alice", Password: "wrong"}); err == nil {
		t.Error("wrong password: no error")
	}
	im, err := Open(context.Background(), ref, Options{Insecure: true, Username: "alice", Password: "s3cret"})
	if err != nil {
		t.Fatalf("explicit credentials: %v", err)
	}
	entries, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
	if err != nil || len(entries) != 1 {
		t.Errorf("walk with credentials: %v %v", entries, err)
	}

	// Credentials from the Docker config file (DOCKER_CONFIG), through the
	// default keychain.
	cfgDir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte("alice:s3cret")),
	}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfgDir)
	im, err = Open(context.Background(), ref, Options{Insecure: true})
	if err != nil {
		t.Fatalf("docker config credentials: %v", err)
	}
	if _, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil); err != nil {
		t.Errorf("walk with docker config credentials: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, ref := range []string{
		PrefixDockerArchive + "/nonexistent/x.tar",
		PrefixOCIArchive + "/nonexistent/x.tar",
		PrefixOCILayout + "/nonexistent",
		"UPPER/case:bad@@",
	} {
		_, err := Open(context.Background(), ref, Options{})
		if err == nil || !strings.Contains(err.Error(), ref) {
			t.Errorf("%s: err = %v, want an error naming the input", ref, err)
		}
	}
	var buf bytes.Buffer
	gzipped := filepath.Join(t.TempDir(), "save.tar.gz")
	buf.Write(gzipBytes(t, tarBytes(t, reg("manifest.json", "[]"))))
	if err := os.WriteFile(gzipped, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), PrefixDockerArchive+gzipped, Options{}); err == nil || !strings.Contains(err.Error(), "decompress it first") {
		t.Errorf("gzipped archive: err = %v", err)
	}
}

// TestOpenLegacyDockerSave reads the pre-Docker-25 `docker save` layout:
// ID/layer.tar files, a duplicate layer stored as a symlink to the first.
func TestOpenLegacyDockerSave(t *testing.T) {
	layer := tarBytes(t, reg("etc/motd", "hello"))
	diffID := sha(layer)
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64",
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID, diffID}}})
	manifest, _ := json.Marshal([]dockerManifestEntry{{Config: "cfg.json", RepoTags: []string{"legacy:1"},
		Layers: []string{"aaa/layer.tar", "bbb/layer.tar"}}})
	path := filepath.Join(t.TempDir(), "legacy.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name, link string
		body       []byte
	}{
		{name: "aaa/layer.tar", body: layer},
		{name: "bbb/layer.tar", link: "../aaa/layer.tar"},
		{name: "cfg.json", body: cfg},
		{name: "manifest.json", body: manifest},
	} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	f.Close()
	im, err := Open(context.Background(), PrefixDockerArchive+path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	entries, _, err := Walk(context.Background(), im, Limits{}, requireAll, readAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]found{{"etc/motd", 1, "hello"}}, summarize(entries)); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}
