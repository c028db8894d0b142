package testimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// Environment variables that steer the cache and the test helpers.
const (
	// EnvCacheDir overrides the cache directory (default
	// os.UserCacheDir()/bulwark/testimages).
	EnvCacheDir = "BULWARK_TESTIMAGE_CACHE"
	// EnvRequire, set to "1", makes Path and Get fail the test instead of
	// skipping it when an image cannot be built here. CI sets it so that a
	// missing tool cannot silently turn integration tests into skips.
	EnvRequire = "BULWARK_TESTIMAGE_REQUIRE"
)

var (
	// ErrUnavailable means an image cannot be built on this machine: a
	// requirement (root, debootstrap, npm, network access to the Go module
	// proxy or the Debian mirror) is missing. Tests skip on it.
	ErrUnavailable = errors.New("build requirement unavailable")
	// ErrUnknown means no recipe has the requested name.
	ErrUnknown = errors.New("unknown test image")
)

// File names inside an image's cache directory.
const (
	dockerArchiveFile = "image.tar"
	ociArchiveFile    = "image.oci.tar"
	ociLayoutDir      = "oci"
	buildInfoFile     = "build.json"
)

// Image is a built test image: the same image in three formats, in the
// cache directory Dir.
type Image struct {
	Name string
	// Key is the recipe hash the image was built from.
	Key string
	// Dir is the image's cache directory.
	Dir string
	// DockerArchive is a `docker save` tarball (scan as docker-archive:PATH).
	DockerArchive string
	// OCIArchive is a tar of an OCI image layout (oci-archive:PATH).
	OCIArchive string
	// OCILayout is an OCI image layout directory (oci-layout:DIR).
	OCILayout string
	// Tag is the reference recorded in the docker archive's manifest.
	Tag string
}

// BuildInfo describes a finished build; it is stored as build.json beside
// the archives so tests and benchmarks can report what they ran on.
type BuildInfo struct {
	Name    string      `json:"name"`
	Key     string      `json:"key"`
	Tag     string      `json:"tag"`
	Summary string      `json:"summary"`
	BuiltAt time.Time   `json:"builtAt"`
	Seconds float64     `json:"seconds"`
	Layers  []LayerInfo `json:"layers"`
	Inputs  []string    `json:"inputs"`
	Notes   []string    `json:"notes,omitempty"`
	// CompressedSize is the sum of the compressed layer sizes (what a
	// registry would transfer); UncompressedSize the sum of the layer tars.
	CompressedSize   int64 `json:"compressedSize"`
	UncompressedSize int64 `json:"uncompressedSize"`
	// DockerArchiveSize is the size of image.tar.
	DockerArchiveSize int64 `json:"dockerArchiveSize"`
}

// LayerInfo describes one layer of a built image.
type LayerInfo struct {
	Digest           string `json:"digest"`
	DiffID           string `json:"diffID"`
	CreatedBy        string `json:"createdBy"`
	Entries          int    `json:"entries"`
	Whiteouts        int    `json:"whiteouts"`
	CompressedSize   int64  `json:"compressedSize"`
	UncompressedSize int64  `json:"uncompressedSize"`
}

// Names lists the images Build knows, in a useful build order (an image
// comes after the images it is derived from).
func Names() []string {
	rs := recipeList()
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.name
	}
	return names
}

// Summary returns a one-line description of the named image.
func Summary(name string) string {
	for _, r := range recipeList() {
		if r.name == name {
			return r.summary
		}
	}
	return ""
}

// DefaultCacheDir returns $BULWARK_TESTIMAGE_CACHE, else
// os.UserCacheDir()/bulwark/testimages.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate test image cache: %w (set %s)", err, EnvCacheDir)
	}
	return filepath.Join(base, "bulwark", "testimages"), nil
}

// Build returns the path of the docker-archive of the named image, building
// it into cacheDir first unless an image built from the same recipe is
// already there. It blocks while another process builds the same image.
// Errors wrap ErrUnavailable when this machine cannot build the image.
func Build(ctx context.Context, name, cacheDir string, log *slog.Logger) (string, error) {
	img, err := BuildImage(ctx, name, cacheDir, log)
	if err != nil {
		return "", err
	}
	return img.DockerArchive, nil
}

// BuildImage is Build returning every format of the image.
func BuildImage(ctx context.Context, name, cacheDir string, log *slog.Logger) (Image, error) {
	b, err := newBuilder(cacheDir, log)
	if err != nil {
		return Image{}, err
	}
	return b.build(ctx, name)
}

// ReadBuildInfo reads the build.json of a built image.
func ReadBuildInfo(img Image) (BuildInfo, error) {
	var bi BuildInfo
	data, err := os.ReadFile(filepath.Join(img.Dir, buildInfoFile))
	if err != nil {
		return bi, fmt.Errorf("read build info of %s: %w", img.Name, err)
	}
	if err := json.Unmarshal(data, &bi); err != nil {
		return bi, fmt.Errorf("parse build info of %s: %w", img.Name, err)
	}
	return bi, nil
}

// Path returns the docker-archive path of the named image for a test,
// building it on first use. It skips the test when the image cannot be built
// on this machine (see EnvRequire) and fails it on any other error.
func Path(t testing.TB, name string) string {
	t.Helper()
	return Get(t, name).DockerArchive
}

// Get is Path returning every format of the image.
func Get(t testing.TB, name string) Image {
	t.Helper()
	dir, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(tbWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	img, err := BuildImage(t.Context(), name, dir, log)
	switch {
	case errors.Is(err, ErrUnavailable) && os.Getenv(EnvRequire) != "1":
		t.Skipf("test image %q cannot be built on this machine (set %s=1 to fail instead): %v", name, EnvRequire, err)
	case err != nil:
		t.Fatalf("test image %q: %v", name, err)
	}
	return img
}

// tbWriter sends build logs to the test log, so a slow first build explains
// itself in `go test -v`.
type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// builder builds recipes into one cache directory.
type builder struct {
	cacheDir string
	// srcDir is internal/testimage/testdata: program sources, npm manifests.
	srcDir  string
	log     *slog.Logger
	recipes map[string]*recipe
	// keys memoises recipe keys; a builder lives for one Build call.
	keys map[string]string
}

func newBuilder(cacheDir string, log *slog.Logger) (*builder, error) {
	if cacheDir == "" {
		return nil, errors.New("test image cache directory is empty")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := sourceDir()
	if err != nil {
		return nil, err
	}
	b := &builder{cacheDir: cacheDir, srcDir: src, log: log, recipes: map[string]*recipe{}, keys: map[string]string{}}
	for _, r := range recipeList() {
		b.recipes[r.name] = r
	}
	return b, nil
}

func (b *builder) recipe(name string) (*recipe, error) {
	r, ok := b.recipes[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
	}
	return r, nil
}

// key hashes everything a recipe's output depends on: its name and version
// (bumped when its code changes), its inputs (source file hashes and
// parameters) and the keys of the images it is derived from.
func (b *builder) key(name string) (string, []string, error) {
	r, err := b.recipe(name)
	if err != nil {
		return "", nil, err
	}
	inputs := []string{fmt.Sprintf("recipe %s v%d", r.name, r.version), fmt.Sprintf("layers v%d", layerFormatVersion)}
	for _, d := range r.deps {
		dk, _, err := b.key(d)
		if err != nil {
			return "", nil, err
		}
		inputs = append(inputs, "dep "+d+" "+dk)
	}
	if r.inputs != nil {
		more, err := r.inputs(b)
		if err != nil {
			return "", nil, fmt.Errorf("recipe %s inputs: %w", name, err)
		}
		inputs = append(inputs, more...)
	}
	h := sha256.New()
	for _, in := range inputs {
		io.WriteString(h, in)
		io.WriteString(h, "\n")
	}
	k := hex.EncodeToString(h.Sum(nil))[:16]
	b.keys[name] = k
	return k, inputs, nil
}

func (b *builder) imageFor(name, key string) Image {
	dir := filepath.Join(b.cacheDir, name+"-"+key)
	return Image{
		Name:          name,
		Key:           key,
		Dir:           dir,
		DockerArchive: filepath.Join(dir, dockerArchiveFile),
		OCIArchive:    filepath.Join(dir, ociArchiveFile),
		OCILayout:     filepath.Join(dir, ociLayoutDir),
		Tag:           imageTag(name),
	}
}

func imageTag(name string) string { return "bulwark.test/testimage/" + name + ":latest" }

// complete reports whether img's directory holds a finished build; the
// directory only appears, by rename, once everything in it is written.
func complete(img Image) bool {
	_, err := os.Stat(filepath.Join(img.Dir, buildInfoFile))
	return err == nil
}

func (b *builder) build(ctx context.Context, name string) (Image, error) {
	r, err := b.recipe(name)
	if err != nil {
		return Image{}, err
	}
	key, inputs, err := b.key(name)
	if err != nil {
		return Image{}, err
	}
	img := b.imageFor(name, key)
	if complete(img) {
		return img, nil
	}
	for _, req := range r.requires {
		if err := req.check(ctx); err != nil {
			return Image{}, fmt.Errorf("build test image %s: %w: %s: %v", name, ErrUnavailable, req.name, err)
		}
	}
	// Images this one is derived from are built (or found) first, before
	// this image's lock is taken, so locks are never nested the other way.
	for _, d := range r.deps {
		if _, err := b.build(ctx, d); err != nil {
			return Image{}, fmt.Errorf("build test image %s: dependency: %w", name, err)
		}
	}
	if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
		return Image{}, fmt.Errorf("build test image %s: %w", name, err)
	}
	unlock, err := lockPath(ctx, filepath.Join(b.cacheDir, name+".lock"), b.log)
	if err != nil {
		return Image{}, fmt.Errorf("build test image %s: lock cache: %w", name, err)
	}
	defer unlock()
	if complete(img) { // built by another process while we waited
		return img, nil
	}
	b.removeStale(name)

	tmp, err := os.MkdirTemp(b.cacheDir, ".build-"+name+"-")
	if err != nil {
		return Image{}, fmt.Errorf("build test image %s: %w", name, err)
	}
	defer removeBuildDir(tmp, b.log)

	start := time.Now()
	b.log.Info("building test image", "name", name, "key", key, "summary", r.summary)
	spec, err := r.build(ctx, b, tmp)
	if err != nil {
		return Image{}, fmt.Errorf("build test image %s: %w", name, err)
	}
	out := filepath.Join(tmp, "out")
	info, err := writeImage(ctx, spec, out, img.Tag)
	if err != nil {
		return Image{}, fmt.Errorf("build test image %s: %w", name, err)
	}
	info.Name, info.Key, info.Summary, info.Inputs = name, key, r.summary, inputs
	info.BuiltAt = start.UTC().Truncate(time.Second)
	info.Seconds = time.Since(start).Seconds()
	info.Notes = spec.notes
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return Image{}, fmt.Errorf("build test image %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(out, buildInfoFile), append(data, '\n'), 0o644); err != nil {
		return Image{}, fmt.Errorf("build test image %s: %w", name, err)
	}
	if err := os.Rename(out, img.Dir); err != nil {
		return Image{}, fmt.Errorf("build test image %s: publish: %w", name, err)
	}
	b.log.Info("built test image", "name", name, "seconds", fmt.Sprintf("%.1f", info.Seconds),
		"layers", len(info.Layers), "compressedMB", fmt.Sprintf("%.1f", float64(info.CompressedSize)/1e6), "dir", img.Dir)
	b.pruneOld(img)
	return img, nil
}

var cacheEntryRE = regexp.MustCompile(`^(.+)-[0-9a-f]{16}$`)

// pruneOld removes builds of the same image from older recipes, so a
// long-lived cache does not grow with every recipe change. The caller holds
// the image's lock.
func (b *builder) pruneOld(keep Image) {
	ents, err := os.ReadDir(b.cacheDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		m := cacheEntryRE.FindStringSubmatch(e.Name())
		if m == nil || m[1] != keep.Name || e.Name() == filepath.Base(keep.Dir) {
			continue
		}
		b.log.Info("removing outdated test image", "dir", e.Name())
		removeBuildDir(filepath.Join(b.cacheDir, e.Name()), b.log)
	}
}

// removeStale removes temporary directories left by builds of this image
// that died (the caller holds the image's lock, so none is running).
func (b *builder) removeStale(name string) {
	matches, _ := filepath.Glob(filepath.Join(b.cacheDir, ".build-"+name+"-*"))
	sort.Strings(matches)
	for _, m := range matches {
		b.log.Info("removing stale build directory", "dir", m)
		removeBuildDir(m, b.log)
	}
}

// removeBuildDir unmounts anything a chroot build left mounted below dir
// (never following it into the host's /proc) and removes dir.
func removeBuildDir(dir string, log *slog.Logger) {
	if err := unmountBelow(dir); err != nil {
		log.Warn("unmount below build directory; leaving it in place", "dir", dir, "err", err)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("remove build directory", "dir", dir, "err", err)
	}
}
