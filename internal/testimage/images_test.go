package testimage

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Integration tests: each builds (or finds in the cache) a real image and
// checks what a scanner will rely on. They skip when this machine cannot
// build the image, unless BULWARK_TESTIMAGE_REQUIRE=1.

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	must(t, err)
	var out []string
	for _, l := range ls {
		d, err := l.Digest()
		must(t, err)
		out = append(out, d.String())
	}
	return out
}

// ociArchiveImage unpacks an oci-archive and opens the image in it.
func ociArchiveImage(t *testing.T, archive string) v1.Image {
	t.Helper()
	f, err := os.Open(archive)
	must(t, err)
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		name := path.Clean(h.Name)
		if strings.HasPrefix(name, "..") || path.IsAbs(name) {
			t.Fatalf("oci-archive entry %q escapes", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			must(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			must(t, err)
			must(t, os.WriteFile(p, data, 0o644))
		default:
			t.Fatalf("oci-archive entry %q has type %c", h.Name, h.Typeflag)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if len(im.Manifests) != 1 {
		t.Fatalf("oci-archive holds %d manifests", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	return img
}

// openAllFormats opens the three archives of a built image, checks they
// hold the same layers and configuration, and returns the docker-archive
// image.
func openAllFormats(t *testing.T, img Image) v1.Image {
	t.Helper()
	d, err := tarball.ImageFromPath(img.DockerArchive, nil)
	must(t, err)
	idx, err := layout.ImageIndexFromPath(img.OCILayout)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "latest" {
		t.Fatalf("OCI layout index: %+v", im.Manifests)
	}
	o, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	a := ociArchiveImage(t, img.OCIArchive)
	want := layerDigests(t, d)
	for name, other := range map[string]v1.Image{"oci-layout": o, "oci-archive": a} {
		if diff := cmp.Diff(want, layerDigests(t, other)); diff != "" {
			t.Errorf("%s layers differ from docker-archive:\n%s", name, diff)
		}
		c1, err := d.ConfigName()
		must(t, err)
		c2, err := other.ConfigName()
		must(t, err)
		if c1 != c2 {
			t.Errorf("%s config %s, docker-archive %s", name, c2, c1)
		}
	}
	mt, err := o.MediaType()
	must(t, err)
	if mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("OCI manifest media type %s", mt)
	}
	bi, err := ReadBuildInfo(img)
	must(t, err)
	if len(bi.Layers) != len(want) {
		t.Errorf("build.json lists %d layers, image has %d", len(bi.Layers), len(want))
	}
	t.Logf("%s: %d layers, %.1f MB compressed, %.1f MB uncompressed, built in %.1fs",
		img.Name, len(bi.Layers), float64(bi.CompressedSize)/1e6, float64(bi.UncompressedSize)/1e6, bi.Seconds)
	return d
}

// flatHeaders lists the flattened file system of img (whiteouts applied by
// go-containerregistry) without keeping file contents.
func flatHeaders(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		out[strings.TrimSuffix(path.Clean("/" + h.Name)[1:], "/")] = h
	}
}

// layerHeaders lists the entries of one layer as stored (whiteouts kept).
func layerHeaders(t *testing.T, l v1.Layer) []*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	must(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		out = append(out, h)
	}
}

func checkGoBinary(t *testing.T, name string, data []byte, wantStripped bool) {
	t.Helper()
	bi, err := buildinfo.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: build info: %v", name, err)
	}
	if bi.GoVersion != goToolchain {
		t.Errorf("%s built with %s, want %s", name, bi.GoVersion, goToolchain)
	}
	deps := map[string]string{}
	for _, d := range bi.Deps {
		deps[d.Path] = d.Version
	}
	for m, v := range GoPrograms()[path.Base(name)] {
		if deps[m] != v {
			t.Errorf("%s: %s is %q, want %s", name, m, deps[m], v)
		}
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["CGO_ENABLED"] != "0" {
		t.Errorf("%s build settings %v", name, settings)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if stripped := ef.Section(".symtab") == nil; stripped != wantStripped {
		t.Errorf("%s: stripped = %v, want %v", name, stripped, wantStripped)
	}
}

func TestGoVulnImage(t *testing.T) {
	img := Get(t, "go-vuln")
	d := openAllFormats(t, img)
	if n := len(layerDigests(t, d)); n != len(goPrograms) {
		t.Errorf("%d layers, want one per program (%d)", n, len(goPrograms))
	}
	var paths []string
	for _, p := range goPrograms {
		paths = append(paths, "usr/local/bin/"+p.name)
	}
	files, err := readFlat(d, paths...)
	must(t, err)
	for _, p := range paths {
		f, ok := files[p]
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if f.hdr.Mode&0o111 == 0 {
			t.Errorf("%s not executable: %o", p, f.hdr.Mode)
		}
		checkGoBinary(t, p, f.data, false)
	}
}

func TestNPMImage(t *testing.T) {
	img := Get(t, "npm")
	d := openAllFormats(t, img)
	hs := flatHeaders(t, d)
	if h := hs["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
		t.Errorf("bin/busybox: %+v", h)
	}
	if h := hs["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/sh: %+v", h)
	}
	pins, err := NPMPackages()
	must(t, err)
	var want []string
	for n := range pins {
		want = append(want, "app/node_modules/"+n+"/package.json")
	}
	want = append(want, "app/package-lock.json", "app/node_modules/.package-lock.json")
	files, err := readFlat(d, want...)
	must(t, err)
	for n, v := range pins {
		f, ok := files["app/node_modules/"+n+"/package.json"]
		if !ok {
			t.Errorf("%s not installed", n)
			continue
		}
		if !bytes.Contains(f.data, []byte(`"version": "`+v+`"`)) {
			t.Errorf("%s: package.json does not say version %s", n, v)
		}
	}
	for _, p := range want[len(pins):] {
		if _, ok := files[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
	var pkgs int
	for p := range hs {
		if strings.HasSuffix(p, "/package.json") && isPackageRoot(p) {
			pkgs++
		}
	}
	if pkgs < 50 {
		t.Errorf("%d installed packages, want the full dependency tree (> 50)", pkgs)
	}
}

func testDebianImage(t *testing.T, name string, packages []string) (v1.Image, map[string]*tar.Header) {
	img := Get(t, name)
	d := openAllFormats(t, img)
	ls, err := d.Layers()
	must(t, err)
	if len(ls) != 3 {
		t.Fatalf("%d layers, want base, packages, clean-up", len(ls))
	}
	// The base layer: hard links kept, mount points empty, host files out.
	var links int
	for _, h := range layerHeaders(t, ls[0]) {
		n := strings.TrimSuffix(h.Name, "/")
		if h.Typeflag == tar.TypeLink {
			links++
		}
		for _, mp := range []string{"proc/", "sys/", "dev/"} {
			if strings.HasPrefix(n, mp) {
				t.Errorf("base layer carries %s", n)
			}
		}
		if n == "etc/resolv.conf" || n == "etc/hostname" || strings.HasPrefix(n, "var/lib/apt/lists/") {
			t.Errorf("base layer carries %s", n)
		}
	}
	if links == 0 {
		t.Errorf("base layer has no hard links (perl, gzip have them)")
	}
	// Every hard link points at a file earlier in the same layer.
	for i, l := range ls {
		seen := map[string]bool{}
		for _, h := range layerHeaders(t, l) {
			if h.Typeflag == tar.TypeLink && !seen[h.Linkname] {
				t.Errorf("layer %d: %s links to %s, not earlier in the layer", i+1, h.Name, h.Linkname)
			}
			seen[h.Name] = true
		}
	}
	// The clean-up layer: real whiteouts of the three kinds.
	var whiteouts []string
	for _, h := range layerHeaders(t, ls[2]) {
		if strings.HasPrefix(path.Base(h.Name), whiteoutPrefix) {
			whiteouts = append(whiteouts, h.Name)
		}
	}
	sort.Strings(whiteouts)
	want := []string{"usr/share/doc/.wh.python3-urllib3", "usr/share/java/.wh.log4j-mongodb3.jar", "var/lib/apt/lists/.wh..wh..opq"}
	if diff := cmp.Diff(want, whiteouts); diff != "" {
		t.Errorf("clean-up layer whiteouts (-want +got):\n%s", diff)
	}
	hs := flatHeaders(t, d)
	for _, p := range DebianRemoved {
		if _, ok := hs[p]; ok {
			t.Errorf("%s still in the flattened image", p)
		}
	}
	for p := range hs {
		if strings.HasPrefix(p, "var/lib/apt/lists/") && p != "var/lib/apt/lists/partial" {
			t.Errorf("%s survives the opaque directory", p)
		}
	}
	if h := hs["usr/share/java/log4j-mongodb3-2.19.0.jar"]; h == nil || h.Typeflag != tar.TypeSymlink {
		t.Errorf("dangling versioned symlink missing: %+v", h)
	}
	if h := hs["etc/os-release"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "../usr/lib/os-release" {
		t.Errorf("etc/os-release: %+v", h)
	}
	files, err := readFlat(d, "var/lib/dpkg/status", "usr/lib/os-release", "etc/apt/sources.list.d/debian.sources")
	must(t, err)
	if !bytes.Contains(files["usr/lib/os-release"].data, []byte(`VERSION_CODENAME=bookworm`)) {
		t.Errorf("os-release: %s", files["usr/lib/os-release"].data)
	}
	if _, ok := files["etc/apt/sources.list.d/debian.sources"]; !ok {
		t.Errorf("apt sources missing")
	}
	installed := map[string]bool{}
	for _, st := range splitStanzas(files["var/lib/dpkg/status"].data) {
		f := stanzaFields(st)
		if f["status"] == "install ok installed" {
			installed[f["package"]] = true
		}
	}
	for _, p := range append([]string{"libc6", "bash", "apt"}, packages...) {
		if !installed[p] {
			t.Errorf("dpkg status: %s not installed", p)
		}
	}
	return d, hs
}

func TestDebianImage(t *testing.T) {
	testDebianImage(t, "debian", debianPackages)
}

func TestBigImage(t *testing.T) {
	_, hs := testDebianImage(t, "big", bigPackages)
	bi, err := ReadBuildInfo(Get(t, "big"))
	must(t, err)
	if bi.CompressedSize < 100e6 {
		t.Errorf("big image is %.1f MB compressed, the benchmark needs >= 100 MB", float64(bi.CompressedSize)/1e6)
	}
	var pyDist bool
	for p := range hs {
		if strings.HasPrefix(p, "usr/lib/python3/dist-packages/requests-") && (strings.HasSuffix(p, ".dist-info") || strings.HasSuffix(p, ".egg-info")) {
			pyDist = true
		}
	}
	if !pyDist {
		t.Errorf("big image: no python3-requests metadata in dist-packages")
	}
	for _, p := range []string{"usr/bin/node", "usr/share/nodejs/lodash/package.json", "usr/bin/python3"} {
		if hs[p] == nil {
			t.Errorf("big image: %s missing", p)
		}
	}
}
