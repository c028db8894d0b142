package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// demoGoPrograms are the go-vuln programs the demo image carries, stripped
// (-ldflags=-s -w) to keep the committed image small.
var demoGoPrograms = []string{"jwtssh", "textnet"}

// DemoGoPrograms returns the names of the Go binaries in the demo image
// (at /usr/local/bin/NAME).
func DemoGoPrograms() []string { return append([]string(nil), demoGoPrograms...) }

// demoDpkgPackages are the dpkg status stanzas the demo image keeps from
// the debian image: the packages real Debian advisories most often name,
// plus the two the debian image installs. Missing ones are skipped.
var demoDpkgPackages = []string{
	"base-files", "bash", "coreutils", "gzip", "libc-bin", "libc6", "libgnutls30",
	"liblog4j2-java", "liblzma5", "libpython3.11-minimal", "libpython3.11-stdlib",
	"libsqlite3-0", "libssl3", "libsystemd0", "libudev1", "libzstd1", "perl-base",
	"python3-urllib3", "python3.11", "python3.11-minimal", "tar", "zlib1g",
}

// demoLabel describes the demo image in its configuration.
const demoLabel = "Bulwark demo image: real Debian bookworm dpkg metadata (inventory only), Go binaries and npm packages with published vulnerabilities"

func demoRecipe() *recipe {
	return &recipe{
		name:    "demo",
		summary: "small image for the README demo: Debian dpkg status subset + os-release, stripped Go binaries, node_modules package.json files",
		version: 2,
		deps:    []string{"debian"},
		inputs: func(b *builder) ([]string, error) {
			g, err := goInputs(b)
			if err != nil {
				return nil, err
			}
			n, err := npmInputs(b)
			if err != nil {
				return nil, err
			}
			return append(append(g, n...),
				"demo go "+strings.Join(demoGoPrograms, " "),
				"demo dpkg "+strings.Join(demoDpkgPackages, " ")), nil
		},
		requires: []requirement{needGoToolchain, needNPM},
		build:    buildDemo,
	}
}

func buildDemo(ctx context.Context, b *builder, dir string) (*imageSpec, error) {
	deb := b.imageFor("debian", b.keys["debian"])
	if !complete(deb) {
		return nil, errors.New("demo: the debian image is not built")
	}
	spec := &imageSpec{created: epoch}
	if bi, err := ReadBuildInfo(deb); err == nil {
		for _, n := range bi.Notes {
			spec.notes = append(spec.notes, "debian image: "+n)
		}
		spec.notes = append(spec.notes, "debian image built "+bi.BuiltAt.Format("2006-01-02"))
	}
	spec.config = v1Config(defaultEnv, []string{"/usr/local/bin/textnet"}, "/app")
	spec.config.Labels = map[string]string{"org.opencontainers.image.description": demoLabel}

	// Layer 1: OS metadata taken unmodified from the debian image.
	files, err := readImageFiles(deb.DockerArchive, "var/lib/dpkg/status", "usr/lib/os-release", "etc/os-release")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	status, ok := files["var/lib/dpkg/status"]
	if !ok {
		return nil, errors.New("demo: debian image has no var/lib/dpkg/status")
	}
	subset, kept := dpkgSubset(status.data, demoDpkgPackages)
	spec.notes = append(spec.notes, "dpkg "+strings.Join(kept, " "))
	osDir := filepath.Join(dir, "stage-os")
	if err := writeStageFile(osDir, "var/lib/dpkg/status", subset, 0o644); err != nil {
		return nil, err
	}
	osRel, ok := files["usr/lib/os-release"]
	if !ok || osRel.hdr.Typeflag != tar.TypeReg {
		return nil, errors.New("demo: debian image has no regular usr/lib/os-release")
	}
	if err := writeStageFile(osDir, "usr/lib/os-release", osRel.data, 0o644); err != nil {
		return nil, err
	}
	if l, ok := files["etc/os-release"]; ok && l.hdr.Typeflag == tar.TypeSymlink {
		if err := os.MkdirAll(filepath.Join(osDir, "etc"), 0o755); err != nil {
			return nil, err
		}
		if err := os.Symlink(l.hdr.Linkname, filepath.Join(osDir, "etc", "os-release")); err != nil {
			return nil, err
		}
	} else {
		return nil, errors.New("demo: debian image's etc/os-release is not a symlink")
	}
	ls, err := b.treeLayer(ctx, dir, osDir, treeFilter{}, normalised,
		fmt.Sprintf("COPY var/lib/dpkg/status (%d of the debian test image's packages, stanzas unmodified), usr/lib/os-release, etc/os-release", len(kept)))
	if err != nil {
		return nil, err
	}
	spec.layers = append(spec.layers, ls)

	// Layer 2: stripped Go binaries.
	goDir := filepath.Join(dir, "stage-go")
	for _, p := range demoGoPrograms {
		if err := b.buildGoProgram(ctx, p, filepath.Join(goDir, "usr", "local", "bin", p), true); err != nil {
			return nil, err
		}
	}
	ls, err = b.treeLayer(ctx, dir, goDir, treeFilter{}, normalised,
		fmt.Sprintf("COPY %s /usr/local/bin/ # go build -trimpath -ldflags='-s -w' (%s)", strings.Join(demoGoPrograms, " "), goToolchain))
	if err != nil {
		return nil, err
	}
	spec.layers = append(spec.layers, ls)

	// Layer 3: the package.json files of a real npm install.
	npmDir := filepath.Join(dir, "npm")
	npmVer, err := b.npmCI(ctx, npmDir)
	if err != nil {
		return nil, err
	}
	spec.notes = append(spec.notes, "npm "+npmVer)
	appDir := filepath.Join(dir, "stage-npm")
	n, err := copyPackageJSONs(filepath.Join(npmDir, "node_modules"), filepath.Join(appDir, "app", "node_modules"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ls, err = b.treeLayer(ctx, dir, appDir, treeFilter{}, normalised,
		fmt.Sprintf("COPY node_modules/**/package.json /app/node_modules/ # %d files from npm ci (npm %s)", n, npmVer))
	if err != nil {
		return nil, err
	}
	spec.layers = append(spec.layers, ls)
	return spec, nil
}

func writeStageFile(root, rel string, data []byte, mode fs.FileMode) error {
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, mode)
}

// copyPackageJSONs copies every package.json below src to the same place
// below dst and returns how many it copied.
func copyPackageJSONs(src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || d.Name() != "package.json" {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		n++
		return copyFile(filepath.Join(dst, rel), p, 0o644)
	})
	if err == nil && n == 0 {
		err = errors.New("no package.json below " + src)
	}
	return n, err
}

// dpkgSubset keeps the stanzas of the named packages, unmodified and in the
// status file's order, and returns the names it kept.
func dpkgSubset(status []byte, names []string) ([]byte, []string) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out bytes.Buffer
	var kept []string
	for _, st := range splitStanzas(status) {
		name := stanzaFields(st)["package"]
		if !want[name] {
			continue
		}
		if out.Len() > 0 {
			out.WriteByte('\n')
		}
		out.Write(st)
		kept = append(kept, name)
	}
	return out.Bytes(), kept
}

// imageFile is a file read from an image's flattened file system.
type imageFile struct {
	hdr  *tar.Header
	data []byte
}

// readImageFiles reads the named paths from the flattened file system of a
// docker-archive (whiteouts applied by go-containerregistry).
func readImageFiles(archive string, paths ...string) (map[string]imageFile, error) {
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", archive, err)
	}
	return readFlat(img, paths...)
}

func readFlat(img v1.Image, paths ...string) (map[string]imageFile, error) {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]imageFile{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read image file system: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if !want[name] {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		out[name] = imageFile{hdr: hdr, data: data}
	}
}
