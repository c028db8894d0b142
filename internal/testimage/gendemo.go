package testimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Files of internal/demo/data.
const (
	DemoImageFile = "demo-image.tar"
	DemoDBDir     = "demo-db"
	demoREADME    = "README.md"
)

// DemoOptions configure GenerateDemo.
type DemoOptions struct {
	// CacheDir is the test image cache (the demo image and the debian
	// image it is cut from are built there).
	CacheDir string
	// OutDir is internal/demo/data.
	OutDir string
	// VulnDataDir holds the shared vulnerability data (../shared/vulndata
	// of the repository).
	VulnDataDir string
	// VulnDBZip is the golang.org/x/vulndb module zip; empty means
	// `go mod download` it.
	VulnDBZip string
	Log       *slog.Logger
}

// GenerateDemo rebuilds internal/demo/data: the demo image (recipe "demo"),
// copied from the cache, and the demo database — subsets of real
// vulnerability data, records unmodified, chosen from what the demo image
// contains — and a README stating the origin and licence of each part.
// Nothing in internal/demo/data is edited by hand.
func GenerateDemo(ctx context.Context, o DemoOptions) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	img, err := BuildImage(ctx, "demo", o.CacheDir, o.Log)
	if err != nil {
		return err
	}
	if o.VulnDBZip == "" {
		if o.VulnDBZip, err = downloadVulnDB(ctx); err != nil {
			return err
		}
	}
	dbDir := filepath.Join(o.OutDir, DemoDBDir)
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(o.OutDir, DemoImageFile), img.DockerArchive, 0o644); err != nil {
		return fmt.Errorf("copy demo image: %w", err)
	}
	contents, err := InspectDemoImage(filepath.Join(o.OutDir, DemoImageFile))
	if err != nil {
		return err
	}

	modules := map[string]bool{"stdlib": true, "toolchain": true}
	for _, bi := range contents.GoBinaries {
		for _, d := range bi.Deps {
			modules[d.Path] = true
		}
	}
	goSt, goCVEs, err := subsetGoVulnDB(o.VulnDBZip, filepath.Join(dbDir, DemoGoVulnDBZip), modules)
	if err != nil {
		return fmt.Errorf("demo Go vulndb: %w", err)
	}
	npmNames := map[string]bool{}
	for _, p := range contents.NPM {
		npmNames[p.Name] = true
	}
	npmSt, npmCVEs, err := subsetNodejs(filepath.Join(o.VulnDataDir, srcNodejsZip), filepath.Join(dbDir, DemoNodejsZip), npmNames)
	if err != nil {
		return fmt.Errorf("demo nodejs-security-wg: %w", err)
	}
	cves := map[string]bool{}
	for c := range goCVEs {
		cves[c] = true
	}
	for c := range npmCVEs {
		cves[c] = true
	}
	kevSt, kevVersion, err := filterKEV(filepath.Join(o.VulnDataDir, srcKEV), filepath.Join(dbDir, DemoKEVJSON), cves)
	if err != nil {
		return fmt.Errorf("demo KEV: %w", err)
	}
	cveSt, err := subsetCVE5(filepath.Join(o.VulnDataDir, srcCVE5Zip), filepath.Join(dbDir, DemoCVE5Zip), cves)
	if err != nil {
		return fmt.Errorf("demo CVE 5: %w", err)
	}
	o.Log.Info("demo database", "goRecords", goSt.records, "npmRecords", npmSt.records, "cves", len(cves), "kev", kevSt.records, "cve5", cveSt.records)

	bi, err := ReadBuildInfo(img)
	if err != nil {
		return err
	}
	sources := readSharedREADME(filepath.Join(o.VulnDataDir, "README.md"))
	readme := renderDemoREADME(demoReadme{
		contents: contents, build: bi, goSt: goSt, npmSt: npmSt, kevSt: kevSt, cveSt: cveSt,
		cves: len(cves), kevVersion: kevVersion, sources: sources,
	})
	return os.WriteFile(filepath.Join(o.OutDir, demoREADME), readme, 0o644)
}

// downloadVulnDB returns the path of the golang.org/x/vulndb module zip,
// downloading it through the Go module proxy if needed.
func downloadVulnDB(ctx context.Context) (string, error) {
	goCmd, err := goCommand()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", VulnDBModule+"@"+VulnDBVersion)
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	cmd.Dir = os.TempDir() // outside any module: only the download matters
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", VulnDBModule, VulnDBVersion, err)
	}
	var m struct{ Zip, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go mod download: %w", err)
	}
	if m.Error != "" || m.Zip == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", VulnDBModule, VulnDBVersion, m.Error)
	}
	return m.Zip, nil
}

// DemoContents is what the demo image holds, read back from the archive.
type DemoContents struct {
	Layers     []DemoLayer
	GoBinaries map[string]*buildinfo.BuildInfo // by path in the image
	NPM        []DemoPackage
	Dpkg       []DemoPackage
	OSRelease  map[string]string
	// Files are the paths in the image's layers (the demo has no
	// whiteouts, so this is its file system).
	Files map[string]*tar.Header
}

// DemoLayer is one layer of the demo image.
type DemoLayer struct {
	Digest    string
	Size      int64
	CreatedBy string
}

// DemoPackage is a package found in the demo image.
type DemoPackage struct {
	Name, Version, Source, Path string
}

// InspectDemoImage opens a docker-archive with go-containerregistry and
// reads the demo's contents from its flattened file system.
func InspectDemoImage(archive string) (*DemoContents, error) {
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", archive, err)
	}
	c := &DemoContents{GoBinaries: map[string]*buildinfo.BuildInfo{}, Files: map[string]*tar.Header{}, OSRelease: map[string]string{}}
	if err := c.readLayers(img); err != nil {
		return nil, fmt.Errorf("inspect %s: %w", archive, err)
	}
	var names []string
	for n := range c.Files {
		names = append(names, n)
	}
	var want []string
	for _, n := range names {
		if strings.HasPrefix(n, "usr/local/bin/") || strings.HasSuffix(n, "/package.json") ||
			n == "var/lib/dpkg/status" || n == "usr/lib/os-release" {
			want = append(want, n)
		}
	}
	files, err := readFlat(img, want...)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", archive, err)
	}
	for n, f := range files {
		switch {
		case strings.HasPrefix(n, "usr/local/bin/") && f.hdr.Typeflag == tar.TypeReg:
			bi, err := buildinfo.Read(bytes.NewReader(f.data))
			if err != nil {
				return nil, fmt.Errorf("inspect %s: %s: %w", archive, n, err)
			}
			c.GoBinaries[n] = bi
		case strings.HasSuffix(n, "/package.json") && isPackageRoot(n):
			var pj struct{ Name, Version string }
			if json.Unmarshal(f.data, &pj) == nil && pj.Name != "" && pj.Version != "" {
				c.NPM = append(c.NPM, DemoPackage{Name: pj.Name, Version: pj.Version, Path: n})
			}
		case n == "var/lib/dpkg/status":
			for _, st := range splitStanzas(f.data) {
				fl := stanzaFields(st)
				c.Dpkg = append(c.Dpkg, DemoPackage{Name: fl["package"], Version: fl["version"], Source: fl["source"], Path: n})
			}
		case n == "usr/lib/os-release":
			sc := bufio.NewScanner(bytes.NewReader(f.data))
			for sc.Scan() {
				if k, v, ok := strings.Cut(sc.Text(), "="); ok {
					c.OSRelease[k] = strings.Trim(v, `"`)
				}
			}
		}
	}
	sort.Slice(c.NPM, func(i, j int) bool { return c.NPM[i].Path < c.NPM[j].Path })
	return c, nil
}

// isPackageRoot reports whether p is node_modules/NAME/package.json or
// node_modules/@SCOPE/NAME/package.json (a package's own manifest, not a
// package.json deeper inside a package).
func isPackageRoot(p string) bool {
	dir := path.Dir(p)
	parent := path.Dir(dir)
	if path.Base(parent) == "node_modules" {
		return true
	}
	return strings.HasPrefix(path.Base(parent), "@") && path.Base(path.Dir(parent)) == "node_modules"
}

func (c *DemoContents) readLayers(img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		dl := DemoLayer{Digest: d.String(), Size: size}
		if i < len(cf.History) {
			dl.CreatedBy = cf.History[i].CreatedBy
		}
		c.Layers = append(c.Layers, dl)
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rc.Close()
				return err
			}
			c.Files[strings.TrimSuffix(hdr.Name, "/")] = hdr
		}
		rc.Close()
	}
	return nil
}

// sourceInfo is a row of the shared vulnerability data README.
type sourceInfo struct{ origin, license string }

// readSharedREADME reads the table of ../shared/vulndata/README.md: file →
// source repository (commit date) and licence.
func readSharedREADME(p string) map[string]sourceInfo {
	out := map[string]sourceInfo{}
	data, err := os.ReadFile(p)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 7 {
			continue
		}
		file := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !strings.Contains(file, ".") || strings.Contains(file, " ") {
			continue
		}
		out[file] = sourceInfo{origin: strings.TrimSpace(cells[2]), license: strings.TrimSpace(cells[len(cells)-2])}
	}
	return out
}

type demoReadme struct {
	contents                  *DemoContents
	build                     BuildInfo
	goSt, npmSt, kevSt, cveSt subsetStats
	cves                      int
	kevVersion                string
	sources                   map[string]sourceInfo
}

func (d demoReadme) source(file, fallback string) sourceInfo {
	if s, ok := d.sources[file]; ok {
		return s
	}
	return sourceInfo{origin: fallback, license: "see the source repository"}
}

func renderDemoREADME(d demoReadme) []byte {
	var b bytes.Buffer
	c := d.contents
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Bulwark demo: a small real image and a small real vulnerability database")
	p("")
	p("Generated by `go run ./internal/testimage/cmd/gen-demo` — do not edit by hand; rerun the generator.")
	p("Everything here is real data: the image is built from real Debian, Go and npm artefacts, and the")
	p("database files are subsets of public advisory databases with every record copied unmodified")
	p("(zip entries are copied with their original compressed bytes; `internal/testimage` tests compare")
	p("them with the sources).")
	p("")
	p("## `%s`", DemoImageFile)
	p("")
	p("A docker-archive (`docker save` format) built by recipe `demo` of `internal/testimage`, key `%s`.", d.build.Key)
	p("Layers are reproducible: fixed timestamps (%s), root-owned, normalised modes.", epoch.Format("2006-01-02"))
	p("")
	p("| layer | compressed | created by |")
	p("|---|---|---|")
	for i, l := range c.Layers {
		p("| %d `%s` | %d bytes | `%s` |", i+1, l.Digest[:19], l.Size, strings.ReplaceAll(l.CreatedBy, "|", `\|`))
	}
	p("")
	p("**OS** — `%s` (`/etc/os-release` is a symlink to `../usr/lib/os-release`, as in Debian). `var/lib/dpkg/status`", c.OSRelease["PRETTY_NAME"])
	p("holds %d unmodified stanzas of the status file of a `debootstrap --variant=minbase bookworm` root", len(c.Dpkg))
	p("file system with `liblog4j2-java` and `python3-urllib3` installed (origin: Debian bookworm packages;")
	p("mirror and build date in the build notes below; Debian package metadata is distributed under each")
	p("package's licence, see `/usr/share/doc/PACKAGE/copyright` in Debian):")
	p("")
	for _, pk := range c.Dpkg {
		src := ""
		if pk.Source != "" {
			src = " (source `" + pk.Source + "`)"
		}
		p("- `%s` %s%s", pk.Name, pk.Version, src)
	}
	p("")
	p("**Debian findings: none, by design.** Debian security advisories (the security tracker, osv.dev's Debian")
	p("export) are not available to this project's build, and we do not invent advisories. The Debian part of")
	p("the demo is inventory only: a scan lists these packages (with their source packages) and reports no")
	p("vulnerabilities for them. Import real Debian advisories with `bulwark db` to see OS findings.")
	p("")
	p("**Go** — binaries built with `%s`, `-trimpath -ldflags='-s -w'`, `CGO_ENABLED=0`, from the programs", goToolchain)
	p("in `internal/testimage/testdata/src` (their `go.mod`/`go.sum` pin the versions):")
	p("")
	var bins []string
	for n := range c.GoBinaries {
		bins = append(bins, n)
	}
	sort.Strings(bins)
	for _, n := range bins {
		bi := c.GoBinaries[n]
		var deps []string
		for _, dep := range bi.Deps {
			deps = append(deps, "`"+dep.Path+"@"+dep.Version+"`")
		}
		p("- `/%s` (%s): %s", n, bi.GoVersion, strings.Join(deps, ", "))
	}
	p("")
	p("**npm** — the `package.json` files only (no code) of `npm ci` of `internal/testimage/testdata/npm/app`")
	p("(its `package-lock.json` pins every version), under `/app/node_modules`: %d packages:", len(c.NPM))
	p("")
	var npm []string
	for _, pk := range c.NPM {
		npm = append(npm, pk.Name+"@"+pk.Version)
	}
	sort.Strings(npm)
	p("%s", wrapList(npm, 100))
	p("")
	p("Build notes:")
	p("")
	for _, n := range d.build.Notes {
		p("- %s", n)
	}
	p("")
	p("## `%s/`", DemoDBDir)
	p("")
	p("| file | origin | licence | kept |")
	p("|---|---|---|---|")
	p("| `%s` | module zip of `%s@%s` (commit %s, %s), entries `data/osv/*.json`, `LICENSE`, `README.md` | records: CC-BY-4.0 (stated in the kept README.md); code: BSD-3-Clause | %d OSV records |",
		DemoGoVulnDBZip, VulnDBModule, VulnDBVersion, pseudoCommit(VulnDBVersion), pseudoDate(VulnDBVersion), d.goSt.records)
	ns := d.source(srcNodejsZip, "nodejs/security-wg")
	p("| `%s` | `%s` of %s | %s (LICENSE.md kept) | %d npm records |", DemoNodejsZip, srcNodejsZip, ns.origin, ns.license, d.npmSt.records)
	ks := d.source(srcKEV, "cisagov/kev-data")
	p("| `%s` | `%s` (catalogVersion %s) of %s | %s | %d KEV entries |", DemoKEVJSON, srcKEV, d.kevVersion, ks.origin, ks.license, d.kevSt.records)
	cs := d.source(srcCVE5Zip, "cisagov/vulnrichment")
	p("| `%s` | `%s` of %s | %s | %d CVE 5 records |", DemoCVE5Zip, srcCVE5Zip, cs.origin, cs.license, d.cveSt.records)
	p("")
	p("Selection rules (in `internal/testimage/demodb.go`):")
	p("")
	p("- Go: every record naming a module in the demo binaries' build info, `stdlib` or `toolchain`; every")
	p("  withdrawn record; and every %dth other record in ID order, so the database is not trivially small.", goSampleEvery)
	p("- npm: every `vuln/npm/*.json` record whose `module_name` is a package in the demo image.")
	p("- The %d CVE IDs aliased by the kept records select the KEV entries (the catalogue's shape and", d.cves)
	p("  formatting are kept; `count` is the number kept) and the CVE 5 records (for CVSS).")
	p("")
	p("KEV entries kept: %s.", strings.Join(codeList(d.kevSt.ids), ", "))
	p("")
	p("npm records kept: %s.", strings.Join(d.npmSt.ids, ", "))
	return b.Bytes()
}

func codeList(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = "`" + id + "`"
	}
	if len(out) == 0 {
		return []string{"none"}
	}
	return out
}

func wrapList(items []string, width int) string {
	var lines []string
	var cur string
	for _, it := range items {
		it = "`" + it + "`"
		if cur != "" && len(cur)+len(it)+2 > width {
			lines = append(lines, cur+",")
			cur = ""
		}
		if cur != "" {
			cur += ", "
		}
		cur += it
	}
	if cur != "" {
		lines = append(lines, cur+".")
	}
	return strings.Join(lines, "\n")
}

// ErrNoVulnData means the shared vulnerability data directory is missing.
var ErrNoVulnData = errors.New("shared vulnerability data not found")

// VulnDataDir returns ../shared/vulndata relative to the repository root,
// where CI and this machine keep the real advisory databases.
func VulnDataDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	d := filepath.Join(root, "..", "shared", "vulndata")
	if _, err := os.Stat(filepath.Join(d, srcKEV)); err != nil {
		return "", fmt.Errorf("%w at %s", ErrNoVulnData, d)
	}
	return d, nil
}

// pseudoCommit and pseudoDate split a Go pseudo-version
// (vX.Y.Z-yyyymmddhhmmss-commit) into its commit and date.
func pseudoCommit(v string) string {
	parts := strings.Split(v, "-")
	return parts[len(parts)-1]
}

func pseudoDate(v string) string {
	parts := strings.Split(v, "-")
	if len(parts) < 3 || len(parts[len(parts)-2]) < 8 {
		return "?"
	}
	t := parts[len(parts)-2]
	return t[0:4] + "-" + t[4:6] + "-" + t[6:8]
}
