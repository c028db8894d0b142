package testimage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// debianSuite is the Debian release of the test images.
const debianSuite = "bookworm"

// Environment variables overriding the Debian mirrors (default: the
// bookworm mirrors configured in this machine's apt sources, else
// deb.debian.org).
const (
	EnvDebianMirror         = "BULWARK_DEBIAN_MIRROR"
	EnvDebianSecurityMirror = "BULWARK_DEBIAN_SECURITY_MIRROR"
)

// debianImage parameterises the debootstrap-based recipes.
type debianImage struct {
	// packages are installed with apt-get in the second layer.
	packages []string
	// cleanup is the shell script of the third layer: it deletes files
	// lower layers added, so the layer carries real whiteouts.
	cleanup string
}

// debianCleanup deletes a file a package installed (a file whiteout,
// leaving the package's versioned symlink dangling, as real clean-ups do),
// a package's documentation directory (a directory whiteout) and the apt
// lists, recreating their directory (an opaque directory).
const debianCleanup = "rm /usr/share/java/log4j-mongodb3.jar" +
	" && rm -r /usr/share/doc/python3-urllib3" +
	" && rm -rf /var/lib/apt/lists && mkdir -p /var/lib/apt/lists/partial"

// DebianRemoved are the paths the debian and big images' last layer
// deletes (besides the apt lists, whose directory it empties); tests check
// they are gone from the flattened file system.
var DebianRemoved = []string{
	"usr/share/java/log4j-mongodb3.jar",
	"usr/share/doc/python3-urllib3",
}

var debianPackages = []string{"liblog4j2-java", "python3-urllib3"}

// bigPackages make the big image about 100 MB compressed the way real
// application images get there: Python and Node.js runtimes on the debian
// image, with language packages installed by the OS package manager
// (Debian's node-lodash in /usr/share/nodejs, python3-requests in
// dist-packages), which a scanner must attribute to dpkg.
var bigPackages = []string{"liblog4j2-java", "python3-urllib3", "python3", "nodejs", "node-lodash", "python3-requests"}

func debianRecipe() *recipe {
	d := debianImage{packages: debianPackages, cleanup: debianCleanup}
	return &recipe{
		name:     "debian",
		summary:  "debootstrap --variant=minbase bookworm; apt-get install " + strings.Join(debianPackages, " ") + "; a clean-up layer with file, directory and opaque whiteouts",
		version:  2,
		inputs:   d.inputs,
		requires: []requirement{needRoot, needDebootstrap},
		build:    d.build,
	}
}

// The debian and big recipes share their code: bump both versions when
// changing it.

func bigRecipe() *recipe {
	d := debianImage{packages: bigPackages, cleanup: debianCleanup}
	return &recipe{
		name:     "big",
		summary:  "the debian image with " + strings.Join(bigPackages, " ") + " (>= 100 MB compressed), for benchmarks",
		version:  3,
		inputs:   d.inputs,
		requires: []requirement{needRoot, needDebootstrap},
		build:    d.build,
	}
}

func (d debianImage) inputs(*builder) ([]string, error) {
	main, sec := debianMirrors()
	return []string{
		"suite " + debianSuite,
		"mirror " + main,
		"security " + sec,
		"packages " + strings.Join(d.packages, " "),
		"cleanup " + d.cleanup,
	}, nil
}

// chrootEnv is the whole environment of commands run in the chroot.
var chrootEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8", "HOME=/root",
}

func (d debianImage) build(ctx context.Context, b *builder, dir string) (*imageSpec, error) {
	mirror, security := debianMirrors()
	root := filepath.Join(dir, "rootfs")
	spec := &imageSpec{
		created: epoch,
		config:  v1Config(defaultEnv, []string{"bash"}, ""),
		notes:   []string{"mirror " + mirror, "security mirror " + security},
	}

	// Layer 1: the base system, as Debian's own images are made.
	b.log.Info("debootstrap", "suite", debianSuite, "mirror", mirror)
	boot := command{name: "debootstrap", args: []string{"--variant=minbase", debianSuite, root, mirror}}
	if err := boot.run(ctx, b.log); err != nil {
		return nil, fmt.Errorf("debootstrap: %w", err)
	}
	if err := writeAptSources(root, mirror, security); err != nil {
		return nil, err
	}
	// As Debian's official images: no downloaded packages, no apt lists.
	if err := b.chroot(ctx, root, "apt-get clean && rm -rf /var/lib/apt/lists/*"); err != nil {
		return nil, err
	}
	ls, err := b.treeLayer(ctx, dir, root, rootfsFilter, layerOptions{},
		"debootstrap --variant=minbase "+debianSuite+" / "+mirror)
	if err != nil {
		return nil, err
	}
	spec.layers = append(spec.layers, ls)

	// Layer 2: packages installed by apt, as a Dockerfile RUN would.
	install := "apt-get update && apt-get install -y --no-install-recommends " +
		strings.Join(d.packages, " ") + " && apt-get clean"
	ls, err = b.chrootLayer(ctx, dir, root, install)
	if err != nil {
		return nil, err
	}
	spec.layers = append(spec.layers, ls)
	versions, err := command{name: "chroot", args: append([]string{root, "dpkg-query", "-W"}, d.packages...), env: chrootEnv, cleanEnv: true}.output(ctx, b.log)
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimSpace(versions), "\n") {
		spec.notes = append(spec.notes, "installed "+strings.Join(strings.Fields(l), " "))
	}

	// Layer 3: deletions, carried as whiteouts.
	ls, err = b.chrootLayer(ctx, dir, root, d.cleanup)
	if err != nil {
		return nil, err
	}
	if ls.stats.whiteouts == 0 {
		return nil, fmt.Errorf("clean-up layer has no whiteouts")
	}
	spec.layers = append(spec.layers, ls)
	return spec, nil
}

// chrootLayer runs script in the chroot and returns the layer of what it
// changed.
func (b *builder) chrootLayer(ctx context.Context, dir, root, script string) (layerSpec, error) {
	_, before, err := walkTree(ctx, root, rootfsFilter)
	if err != nil {
		return layerSpec{}, err
	}
	if err := b.chroot(ctx, root, script); err != nil {
		return layerSpec{}, err
	}
	_, after, err := walkTree(ctx, root, rootfsFilter)
	if err != nil {
		return layerSpec{}, err
	}
	items := diffTrees(before, after)
	return b.itemsLayer(ctx, dir, root, items, "/bin/sh -c "+script)
}

// chroot runs a shell script inside root with /proc mounted (Java's
// post-install scripts need it); where mounting is not allowed it runs
// without, which apt tolerates for most packages.
func (b *builder) chroot(ctx context.Context, root, script string) error {
	unmount, err := mountProc(filepath.Join(root, "proc"))
	if err != nil {
		b.log.Warn("cannot mount /proc in the chroot; continuing without", "err", err)
	} else {
		defer unmount()
	}
	b.log.Info("chroot", "script", script)
	c := command{name: "chroot", args: []string{root, "/bin/sh", "-c", script}, env: chrootEnv, cleanEnv: true}
	if err := c.run(ctx, b.log); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return nil
}

// writeAptSources replaces debootstrap's one-line sources.list with the
// deb822 file Debian's official images carry (main, updates, security).
func writeAptSources(root, mirror, security string) error {
	src := fmt.Sprintf(`Types: deb
URIs: %s
Suites: %s %s-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: %s
Suites: %s-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`, mirror, debianSuite, debianSuite, security, debianSuite)
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list.d/debian.sources"), []byte(src), 0o644); err != nil {
		return fmt.Errorf("write apt sources: %w", err)
	}
	if err := os.Remove(filepath.Join(root, "etc/apt/sources.list")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("write apt sources: %w", err)
	}
	return nil
}

// debianMirrors returns the Debian and Debian security mirrors: from the
// environment, else from this machine's apt sources, else deb.debian.org.
func debianMirrors() (mirror, security string) {
	mirror, security = os.Getenv(EnvDebianMirror), os.Getenv(EnvDebianSecurityMirror)
	if mirror == "" || security == "" {
		var entries []aptSource
		for _, f := range aptSourceFiles() {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			entries = append(entries, parseAptSources(data, strings.HasSuffix(f, ".sources"))...)
		}
		m, s := pickDebianMirrors(entries, debianSuite)
		if mirror == "" {
			mirror = m
		}
		if security == "" {
			security = s
		}
	}
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if security == "" {
		security = "http://deb.debian.org/debian-security"
	}
	return strings.TrimRight(mirror, "/"), strings.TrimRight(security, "/")
}

func aptSourceFiles() []string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		sort.Strings(m)
		files = append(files, m...)
	}
	return files
}

// aptSource is one binary-package source of an apt configuration.
type aptSource struct {
	uris   []string
	suites []string
}

// parseAptSources reads apt source entries, one-line format
// ("deb [opts] URI SUITE COMPONENT...") or deb822 (".sources" stanzas).
// Only "deb" entries are returned. Malformed lines are ignored: this reads
// the host's configuration only to find a mirror.
func parseAptSources(data []byte, deb822 bool) []aptSource {
	var out []aptSource
	if deb822 {
		for _, st := range splitStanzas(data) {
			f := stanzaFields(st)
			if !containsWord(f["types"], "deb") {
				continue
			}
			if f["enabled"] == "no" {
				continue
			}
			out = append(out, aptSource{uris: strings.Fields(f["uris"]), suites: strings.Fields(f["suites"])})
		}
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "deb" {
			continue
		}
		fields = fields[1:]
		if strings.HasPrefix(fields[0], "[") { // options: [arch=amd64 signed-by=...]
			for len(fields) > 0 && !strings.HasSuffix(fields[0], "]") {
				fields = fields[1:]
			}
			if len(fields) == 0 {
				continue
			}
			fields = fields[1:]
		}
		if len(fields) < 2 {
			continue
		}
		out = append(out, aptSource{uris: []string{fields[0]}, suites: []string{fields[1]}})
	}
	return out
}

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// pickDebianMirrors returns the first URI serving suite, and the first
// serving suite-security.
func pickDebianMirrors(entries []aptSource, suite string) (mirror, security string) {
	for _, e := range entries {
		for _, s := range e.suites {
			for _, u := range e.uris {
				if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
					continue
				}
				if s == suite && mirror == "" {
					mirror = u
				}
				if s == suite+"-security" && security == "" {
					security = u
				}
			}
		}
	}
	return mirror, security
}

// splitStanzas splits RFC 822-style control data (dpkg status, deb822 apt
// sources) into stanzas separated by blank lines. Each stanza is returned
// byte for byte, with its trailing newline, so a subset of a status file
// is made of unmodified stanzas.
func splitStanzas(data []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		line := data[i:]
		if end >= 0 {
			next = i + end + 1
			line = data[i : i+end]
		}
		blank := len(bytes.TrimSpace(line)) == 0
		switch {
		case blank && start >= 0:
			out = append(out, data[start:i])
			start = -1
		case !blank && start < 0:
			start = i
		}
		i = next
	}
	if start >= 0 {
		out = append(out, data[start:])
	}
	return out
}

// stanzaFields returns a stanza's fields, keys lower-cased, continuation
// lines joined with newlines.
func stanzaFields(st []byte) map[string]string {
	f := map[string]string{}
	last := ""
	for _, line := range strings.Split(string(st), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			f[last] += "\n" + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			last = ""
			continue
		}
		last = strings.ToLower(strings.TrimSpace(k))
		f[last] = strings.TrimSpace(v)
	}
	return f
}
