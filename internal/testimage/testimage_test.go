package testimage

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// envHelperCache makes the test binary act as a second process building
// the "tiny" image into the given cache (see TestMain).
const envHelperCache = "BULWARK_TESTIMAGE_HELPER_CACHE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envHelperCache); dir != "" {
		if err := helperBuild(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinyRecipe is a cheap real recipe for testing the cache: one layer made
// of a committed file. Each build appends a line to cacheDir/builds.log, so
// tests can count builds across processes.
func tinyRecipe(salt string) *recipe {
	return &recipe{
		name:    "tiny",
		summary: "cache test image",
		version: 1,
		inputs:  func(*builder) ([]string, error) { return []string{"salt " + salt}, nil },
		build: func(ctx context.Context, b *builder, dir string) (*imageSpec, error) {
			stage := filepath.Join(dir, "stage")
			if err := copyFile(filepath.Join(stage, "app", "package.json"), filepath.Join(b.srcDir, npmAppDir, "package.json"), 0o644); err != nil {
				return nil, err
			}
			ls, err := b.treeLayer(ctx, dir, stage, treeFilter{}, normalised, "COPY package.json /app/")
			if err != nil {
				return nil, err
			}
			f, err := os.OpenFile(filepath.Join(b.cacheDir, "builds.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(f, "pid %d\n", os.Getpid())
			f.Close()
			time.Sleep(300 * time.Millisecond) // widen the race window
			return &imageSpec{created: epoch, layers: []layerSpec{ls}, config: v1Config(defaultEnv, nil, "")}, nil
		},
	}
}

func tinyBuilder(t testing.TB, cacheDir, salt string) *builder {
	b, err := newBuilder(cacheDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b.recipes["tiny"] = tinyRecipe(salt)
	return b
}

func helperBuild(dir string) error {
	b, err := newBuilder(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	b.recipes["tiny"] = tinyRecipe("a")
	_, err = b.build(context.Background(), "tiny")
	return err
}

func TestConcurrentBuildsShareOneBuild(t *testing.T) {
	cache := t.TempDir()
	// A stale directory from a build that died must be cleaned up.
	stale := filepath.Join(cache, ".build-tiny-12345")
	must(t, os.MkdirAll(filepath.Join(stale, "rootfs"), 0o755))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	dirs := make(chan string, 8)
	for i := 0; i < 3; i++ { // other processes
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envHelperCache+"="+cache)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper process: %v: %s", err, out)
			}
		}()
	}
	for i := 0; i < 3; i++ { // goroutines of this process, each with its own builder
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := tinyBuilder(t, cache, "a").build(context.Background(), "tiny")
			if err != nil {
				errs <- err
				return
			}
			dirs <- img.Dir
		}()
	}
	wg.Wait()
	close(errs)
	close(dirs)
	for err := range errs {
		t.Error(err)
	}
	var first string
	for d := range dirs {
		if first == "" {
			first = d
		}
		if d != first {
			t.Errorf("builds returned different directories: %s, %s", first, d)
		}
	}
	log, err := os.ReadFile(filepath.Join(cache, "builds.log"))
	must(t, err)
	if n := strings.Count(string(log), "\n"); n != 1 {
		t.Errorf("image built %d times by 6 concurrent callers, want once:\n%s", n, log)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale build directory still there: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, ".build-*"))
	if len(left) > 0 {
		t.Errorf("temporary build directories left: %v", left)
	}

	if first == "" {
		t.Fatal("no build succeeded")
	}
	// The result opens in every format, with the same layers.
	img := tinyBuilder(t, cache, "a").imageFor("tiny", filepath.Base(first)[len("tiny-"):])
	dimg, err := tarball.ImageFromPath(img.DockerArchive, nil)
	must(t, err)
	idx, err := layout.ImageIndexFromPath(img.OCILayout)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if len(im.Manifests) != 1 {
		t.Fatalf("OCI layout has %d manifests", len(im.Manifests))
	}
	oimg, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	if diff := cmp.Diff(layerDigests(t, dimg), layerDigests(t, oimg)); diff != "" {
		t.Errorf("docker-archive and OCI layout layers differ:\n%s", diff)
	}
	ociArchiveImage(t, img.OCIArchive) // opens, see images_test.go
}

func TestRecipeChangeRebuildsAndPrunes(t *testing.T) {
	cache := t.TempDir()
	ctx := context.Background()
	a, err := tinyBuilder(t, cache, "a").build(ctx, "tiny")
	must(t, err)
	again, err := tinyBuilder(t, cache, "a").build(ctx, "tiny")
	must(t, err)
	if again.Dir != a.Dir {
		t.Errorf("same recipe, new directory: %s vs %s", a.Dir, again.Dir)
	}
	b, err := tinyBuilder(t, cache, "b").build(ctx, "tiny")
	must(t, err)
	if b.Key == a.Key {
		t.Fatalf("changed recipe kept key %s", a.Key)
	}
	if _, err := os.Stat(a.Dir); !os.IsNotExist(err) {
		t.Errorf("outdated build %s not pruned", a.Dir)
	}
	if !complete(b) {
		t.Errorf("new build incomplete")
	}
	log, err := os.ReadFile(filepath.Join(cache, "builds.log"))
	must(t, err)
	if n := strings.Count(string(log), "\n"); n != 2 {
		t.Errorf("%d builds, want 2", n)
	}
}

// TestKeyFollowsSources checks that editing a test program changes the keys
// of every image carrying it (go-vuln, and demo through its inputs), and
// nothing else.
func TestKeyFollowsSources(t *testing.T) {
	src := t.TempDir()
	for _, d := range []string{"src", npmAppDir} {
		must(t, os.CopyFS(filepath.Join(src, d), os.DirFS(filepath.Join(mustSourceDir(t), d))))
	}
	keys := func() map[string]string {
		b, err := newBuilder(t.TempDir(), nil)
		must(t, err)
		b.srcDir = src
		out := map[string]string{}
		for _, n := range Names() {
			k, _, err := b.key(n)
			must(t, err)
			out[n] = k
		}
		return out
	}
	before := keys()
	if diff := cmp.Diff(before, keys()); diff != "" {
		t.Fatalf("keys not stable:\n%s", diff)
	}
	p := filepath.Join(src, "src", "textnet", "main.go")
	data, err := os.ReadFile(p)
	must(t, err)
	must(t, os.WriteFile(p, append(data, "\n// edited\n"...), 0o644))
	after := keys()
	for _, n := range Names() {
		changed := before[n] != after[n]
		want := n == "go-vuln" || n == "demo"
		if changed != want {
			t.Errorf("%s: key changed = %v, want %v", n, changed, want)
		}
	}
}

func mustSourceDir(t *testing.T) string {
	t.Helper()
	d, err := sourceDir()
	must(t, err)
	return d
}

func TestRecipeList(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range recipeList() {
		if seen[r.name] {
			t.Errorf("duplicate recipe %s", r.name)
		}
		for _, d := range r.deps {
			if !seen[d] {
				t.Errorf("%s depends on %s, which is not listed before it", r.name, d)
			}
		}
		seen[r.name] = true
		if r.build == nil || r.summary == "" || r.version < 1 {
			t.Errorf("recipe %s incomplete", r.name)
		}
		if !cacheEntryRE.MatchString(r.name + "-0123456789abcdef") {
			t.Errorf("recipe name %q does not make a cache entry name", r.name)
		}
	}
	_, err := BuildImage(context.Background(), "no-such-image", t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "unknown test image") {
		t.Errorf("unknown image: err = %v", err)
	}
}

func TestGoProgramsMatchGoMod(t *testing.T) {
	for name, mods := range GoPrograms() {
		data, err := os.ReadFile(filepath.Join(mustSourceDir(t), "src", name, "go.mod"))
		must(t, err)
		for m, v := range mods {
			if !strings.Contains(string(data), "\t"+m+" "+v) {
				t.Errorf("%s/go.mod does not pin %s %s", name, m, v)
			}
		}
		if !strings.Contains(string(data), "\ngo 1.21\n") {
			t.Errorf("%s/go.mod: go line must allow %s", name, goToolchain)
		}
	}
}

func TestParseAptSources(t *testing.T) {
	oneLine := []byte(`# comment
deb http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://mirror.example/debian-security bookworm-security main # trailing
deb [broken
deb cdrom:[Debian]/ bookworm main
`)
	got := parseAptSources(oneLine, false)
	want := []aptSource{
		{uris: []string{"http://deb.debian.org/debian"}, suites: []string{"bookworm"}},
		{uris: []string{"https://mirror.example/debian-security"}, suites: []string{"bookworm-security"}},
		{uris: []string{"cdrom:[Debian]/"}, suites: []string{"bookworm"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(aptSource{})); diff != "" {
		t.Errorf("one-line (-want +got):\n%s", diff)
	}
	m, s := pickDebianMirrors(got, "bookworm")
	if m != "http://deb.debian.org/debian" || s != "https://mirror.example/debian-security" {
		t.Errorf("mirrors = %q, %q", m, s)
	}

	// This machine's format (deb822, with a snapshot comment).
	deb822 := []byte(`Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Enabled: yes

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no
`)
	got = parseAptSources(deb822, true)
	want = []aptSource{
		{uris: []string{"http://deb.debian.org/debian"}, suites: []string{"bookworm", "bookworm-updates"}},
		{uris: []string{"http://deb.debian.org/debian-security"}, suites: []string{"bookworm-security"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(aptSource{})); diff != "" {
		t.Errorf("deb822 (-want +got):\n%s", diff)
	}
	t.Setenv(EnvDebianMirror, "http://override.example/debian/")
	t.Setenv(EnvDebianSecurityMirror, "http://override.example/security")
	if m, s := debianMirrors(); m != "http://override.example/debian" || s != "http://override.example/security" {
		t.Errorf("environment override ignored: %q %q", m, s)
	}
}

func TestSplitStanzas(t *testing.T) {
	in := "\n\nPackage: a\nVersion: 1\nDescription: x\n more\n\n \nPackage: b\r\nVersion: 2\n\n\nPackage: c\nVersion: 3"
	got := splitStanzas([]byte(in))
	var s []string
	for _, st := range got {
		s = append(s, string(st))
	}
	want := []string{"Package: a\nVersion: 1\nDescription: x\n more\n", "Package: b\r\nVersion: 2\n", "Package: c\nVersion: 3"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("stanzas (-want +got):\n%s", diff)
	}
	f := stanzaFields(got[0])
	if f["package"] != "a" || f["description"] != "x\nmore" {
		t.Errorf("fields = %q", f)
	}
}

func FuzzSplitStanzas(f *testing.F) {
	f.Add([]byte("Package: a\nVersion: 1\n\nPackage: b\n"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("Types: deb\nURIs: http://x\n  continued\n\n#c\nSuites: y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var nonBlank int
		for _, l := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(l) != "" {
				nonBlank++
			}
		}
		var got int
		for _, st := range splitStanzas(data) {
			if len(st) == 0 || !strings.Contains(string(data), string(st)) {
				t.Fatalf("stanza %q is not a piece of the input", st)
			}
			for _, l := range strings.Split(strings.TrimSuffix(string(st), "\n"), "\n") {
				if strings.TrimSpace(l) == "" {
					t.Fatalf("blank line inside stanza %q", st)
				}
				got++
			}
			stanzaFields(st)
		}
		if got != nonBlank {
			t.Fatalf("stanzas hold %d lines, input has %d non-blank lines", got, nonBlank)
		}
		parseAptSources(data, true)
		parseAptSources(data, false)
	})
}

func TestDpkgSubsetKeepsStanzasUnmodified(t *testing.T) {
	// The status file of the committed demo image is real dpkg output.
	files, err := readImageFiles(demoImagePath(t), "var/lib/dpkg/status")
	must(t, err)
	status := files["var/lib/dpkg/status"].data
	sub, kept := dpkgSubset(status, []string{"libc6", "no-such-package", "bash"})
	if diff := cmp.Diff([]string{"bash", "libc6"}, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	sts := splitStanzas(sub)
	if len(sts) != 2 {
		t.Fatalf("%d stanzas", len(sts))
	}
	for _, st := range sts {
		if !strings.Contains(string(status), string(st)) {
			t.Errorf("stanza not byte-identical to the source:\n%s", st)
		}
	}
}

func TestPseudoVersion(t *testing.T) {
	if c, d := pseudoCommit(VulnDBVersion), pseudoDate(VulnDBVersion); c != "e22db6528018" || d != "2026-11-05" {
		t.Errorf("pseudo-version parts %q %q", c, d)
	}
}
