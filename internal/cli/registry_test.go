package cli

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/testimage"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// isolateDockerConfig points the Docker config lookup at an empty directory,
// so the tests never use (or depend on) this machine's registry credentials.
func isolateDockerConfig(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
}

// TestRegistryDebian pushes the debian test image (debootstrap bookworm with
// liblog4j2-java and python3-urllib3 installed by apt, and a clean-up layer
// of whiteouts) to an in-process registry and scans it from there.
func TestRegistryDebian(t *testing.T) {
	isolateDockerConfig(t)
	img := testimage.Get(t, "debian")
	host := newRegistry(t, nil)
	ref, digest := pushLayout(t, img.OCILayout, host+"/debian:test")

	// PyPI advisories (real, PyPA's database) cover urllib3 1.26.12; they
	// must not be applied to the copy Debian installed.
	db := importedDB(t, sharedVulnData(t, "pypa-advisory-database.zip"), demoDBFile(t, "cisa-kev.json"))
	r := run(t, "scan", "image", "--insecure", "--db-dir", db, "--format", "json", ref).want(t, ExitOK)
	res := parseResult(t, r.stdout)

	if res.Target.Digest != digest.String() {
		t.Errorf("target digest %s, pushed %s", res.Target.Digest, digest)
	}
	if res.OS == nil || res.OS.ID != "debian" || res.OS.VersionID != "12" {
		t.Fatalf("OS %+v, want Debian 12", res.OS)
	}
	manifest, err := layoutImage(t, img.OCILayout).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Target.Layers) != len(manifest.Layers) {
		t.Fatalf("%d layers recorded, the manifest has %d", len(res.Target.Layers), len(manifest.Layers))
	}
	layerIdx := map[string]int{}
	for i, l := range res.Target.Layers {
		if l.Digest != manifest.Layers[i].Digest.String() || l.Size != manifest.Layers[i].Size || l.DiffID == "" {
			t.Errorf("layer %d recorded as %+v, manifest says %s (%d bytes)", i, l, manifest.Layers[i].Digest, manifest.Layers[i].Size)
		}
		layerIdx[l.Digest] = i
	}

	var debs, withSource int
	installed := map[string]bool{}
	var java, pypi []inventory.Package
	for _, p := range res.Packages {
		i, ok := layerIdx[p.Layer]
		if !ok {
			t.Errorf("%s %s: layer %q is not one of the image's layers", p.Type, p.Name, p.Layer)
		}
		switch p.Type {
		case inventory.TypeDeb:
			debs++
			installed[p.Name] = true
			if p.SourceName != "" && p.SourceName != p.Name {
				withSource++
			}
			// apt-get install rewrote the dpkg status file in layer 1.
			if i != 1 {
				t.Errorf("dpkg %s attributed to layer %d, want 1 (the last layer writing var/lib/dpkg/status)", p.Name, i)
			}
		case inventory.TypeMaven:
			java = append(java, p)
		case inventory.TypePyPI:
			pypi = append(pypi, p)
		}
	}
	if debs < 100 || withSource < 20 {
		t.Errorf("%d dpkg packages, %d with a distinct source package", debs, withSource)
	}
	for _, want := range []string{"liblog4j2-java", "python3-urllib3", "libssl3", "base-files"} {
		if !installed[want] {
			t.Errorf("dpkg package %s not found", want)
		}
	}

	// Debian's log4j jars: found, attributed to the dpkg package, from the
	// apt-get layer; the jar deleted by the last layer is gone.
	var log4jCore bool
	for _, p := range java {
		if !strings.HasPrefix(p.Location, "usr/share/java/") {
			t.Errorf("maven %s found in %s", p.Name, p.Location)
		}
		if p.OSPackage == "" {
			t.Errorf("maven %s@%s in %s is not marked as installed by dpkg", p.Name, p.Version, p.Location)
		}
		if strings.HasPrefix(p.Name, "org.apache.logging.log4j:") && p.OSPackage != "liblog4j2-java" {
			t.Errorf("%s in %s: osPackage %q, want liblog4j2-java", p.Name, p.Location, p.OSPackage)
		}
		if p.Name == "org.apache.logging.log4j:log4j-core" && p.Version == "2.19.0" {
			log4jCore = true
		}
		for _, gone := range testimage.DebianRemoved {
			if p.Location == gone || strings.HasPrefix(p.Location, gone+"/") {
				t.Errorf("package %s found in %s, which the image's last layer deletes", p.Name, p.Location)
			}
		}
		if layerIdx[p.Layer] != 1 {
			t.Errorf("%s attributed to layer %d, want 1 (apt-get install)", p.Location, layerIdx[p.Layer])
		}
	}
	if !log4jCore {
		t.Error("log4j-core 2.19.0 from Debian's liblog4j2-java not found")
	}
	checkBeforeCleanup(t, img.OCILayout, host)
	var urllib3 *inventory.Package
	for i, p := range pypi {
		if p.OSPackage == "" {
			t.Errorf("pypi %s@%s in %s is not marked as installed by dpkg", p.Name, p.Version, p.Location)
		}
		if p.Name == "urllib3" {
			urllib3 = &pypi[i]
		}
	}
	if urllib3 == nil || urllib3.OSPackage != "python3-urllib3" {
		t.Fatalf("urllib3 from python3-urllib3 not found or not attributed: %+v", urllib3)
	}
	for _, f := range res.Findings {
		if f.Package.Type == inventory.TypePyPI || f.Package.Type == inventory.TypeMaven {
			t.Errorf("%s reported on %s %s (installed by %s): language advisories must not apply to distribution packages",
				f.Vulnerability.ID, f.Package.Type, f.Package.Name, f.Package.OSPackage)
		}
	}
	// Control: the database does hold PyPI advisories for this urllib3, so
	// the absence above is the OS-package rule at work, not missing data.
	// (No Maven advisory source is available to this project, so the same
	// control cannot be made for the log4j jars.)
	vdb, err := vulndb.Open(db, vulndb.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer vdb.Close()
	bare := *urllib3
	bare.OSPackage = ""
	ms, err := vdb.Match(t.Context(), []inventory.Package{bare})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Error("control: PyPA advisories do not match urllib3 1.26.12 even without the OS-package marking")
	}
}

// checkBeforeCleanup is the control for the whiteout check: the same image
// without its clean-up layer does hold the jar that layer deletes, so its
// absence above is the whiteout at work.
func checkBeforeCleanup(t *testing.T, layoutDir, host string) {
	t.Helper()
	full := layoutImage(t, layoutDir)
	layers, err := full.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := full.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs, cfg.History = nil, nil
	base, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := mutate.AppendLayers(base, layers[:len(layers)-1]...)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/debian:pre-cleanup"
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, pre, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	res := parseResult(t, run(t, "scan", "image", "--insecure", "--skip-db", "--format", "json", ref).want(t, ExitOK).stdout)
	if !slices.ContainsFunc(res.Packages, func(p inventory.Package) bool { return p.Location == testimage.DebianRemoved[0] }) {
		t.Errorf("control: without the clean-up layer no package is found in %s, so the whiteout check proves nothing", testimage.DebianRemoved[0])
	}
}

// basicAuth requires alice/s3cret, answering 401 with a Basic challenge
// as a registry behind basic auth does.
func basicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="bulwark-test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestRegistryBasicAuth(t *testing.T) {
	isolateDockerConfig(t)
	host := newRegistry(t, basicAuth)
	// The committed demo image: small, and always available.
	img, err := tarball.ImageFromPath(filepath.Join(repoRoot(t), "internal", "demo", "data", "demo-image.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/team/demo:1"
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}), remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	db := demoDB(t)
	scanArgs := func(extra ...string) []string {
		return append(append([]string{"scan", "image", "--insecure", "--db-dir", db, "--format", "json"}, extra...), ref)
	}

	r := runWith(t, runOpts{stdin: "s3cret\n"}, scanArgs("--username", "alice", "--password-stdin")...).want(t, ExitOK)
	if res := parseResult(t, r.stdout); len(res.Packages) < 100 || len(res.Findings) == 0 {
		t.Errorf("authenticated scan: %d packages, %d findings", len(res.Packages), len(res.Findings))
	}

	for _, c := range []struct {
		name  string
		stdin string
		args  []string
	}{
		{"anonymous", "", nil},
		{"wrong password", "guess\n", []string{"--username", "alice", "--password-stdin"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runWith(t, runOpts{stdin: c.stdin}, scanArgs(c.args...)...).want(t, ExitError)
			msg := strings.ToLower(r.stderr)
			if !strings.Contains(r.stderr, ref) && !strings.Contains(r.stderr, host) {
				t.Errorf("error does not name the image:\n%s", r.stderr)
			}
			if !strings.Contains(msg, "401") && !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "authentication") {
				t.Errorf("error does not say authentication failed:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("a report was written for an image that could not be read (%d bytes)", len(r.stdout))
			}
		})
	}

	r = runWith(t, runOpts{stdin: "s3cret\n"}, scanArgs("--password-stdin")...).want(t, ExitError)
	if !strings.Contains(r.stderr, "--username") {
		t.Errorf("--password-stdin without --username: %s", r.stderr)
	}
}
