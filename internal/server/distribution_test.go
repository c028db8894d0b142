package server

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/testlog"
)

// distributionVersion is the CNCF Distribution release the end-to-end
// test builds from the Go module proxy (go list -m -versions
// github.com/distribution/distribution/v3).
const distributionVersion = "v3.1.2"

var updatePayloads = flag.Bool("update-payloads", false, "rewrite testdata/distribution-*.json from the real registry's notifications")

// registryBinary returns CNCF Distribution's registry binary, built once
// from the module proxy in a separate temporary module (so Bulwark's
// go.mod does not grow) into a cache directory: $BULWARK_TESTBIN_CACHE,
// else the user cache dir + bulwark/testbin.
func registryBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BULWARK_TESTBIN_CACHE")
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			t.Skipf("no cache directory for the registry binary: %v", err)
		}
		dir = filepath.Join(c, "bulwark", "testbin")
	}
	bin := filepath.Join(dir, "distribution-registry-"+distributionVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if testing.Short() {
		t.Skip("-short: not building the distribution registry")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module bulwark-test/registry\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("building the distribution registry %s from the module proxy (once; cached in %s)", distributionVersion, dir)
	run := func(args ...string) {
		cmd := exec.Command(goCmd, args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("get", "github.com/distribution/distribution/v3/cmd/registry@"+distributionVersion)
	tmp := bin + fmt.Sprintf(".tmp%d", os.Getpid())
	run("build", "-trimpath", "-o", tmp, "github.com/distribution/distribution/v3/cmd/registry")
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// capture records the bodies a second notification endpoint receives.
type capture struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	c.mu.Unlock()
}

func (c *capture) all() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.bodies...)
}

// TestDistributionEndToEnd runs a real CNCF Distribution registry whose
// notifications endpoint is this server's hook URL over TLS (the
// registry trusts the generated certificate through SSL_CERT_FILE; the
// secret goes in endpoints.headers), pushes the demo image to it, and
// checks that the push becomes one scan job that runs and that the image
// and its findings appear through the API.
func TestDistributionEndToEnd(t *testing.T) {
	bin := registryBinary(t)
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dbDir := importDB(t, advisoryFiles(t))
			e := startEnv(t, b.DSN(t), Config{Workers: 2, DBDir: dbDir, SweepInterval: -1})
			const secret = "distribution-e2e-webhook-secret"
			port := freePort(t)
			regURL := fmt.Sprintf("http://127.0.0.1:%d", port)
			reg := createRegistry(t, e.st, "local-distribution", regURL, "distribution", secret)
			e.srv.secrets.invalidate()

			capt := &capture{}
			cs := httptest.NewServer(capt)
			defer cs.Close()
			cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: 127.0.0.1:%d
  secret: e2e-not-secret
notifications:
  endpoints:
    - name: bulwark
      url: %s/api/v1/hooks/distribution
      headers:
        Authorization: [Bearer %s]
      timeout: 5s
      threshold: 5
      backoff: 1s
    - name: capture
      url: %s/capture
      timeout: 5s
      threshold: 5
      backoff: 1s
`, t.TempDir(), port, e.url, secret, cs.URL)
			cfgPath := filepath.Join(t.TempDir(), "config.yml")
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			regLog := &testlog.Buffer{}
			cmd := exec.Command(bin, "serve", cfgPath)
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+e.caPath, "OTEL_TRACES_EXPORTER=none")
			cmd.Stdout, cmd.Stderr = regLog, regLog
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				if t.Failed() {
					t.Logf("registry log:\n%s", tail(regLog.String(), 4000))
				}
			}()
			waitFor(t, 30*time.Second, "the registry to answer", func() bool {
				resp, err := http.Get(regURL + "/v2/")
				if err == nil {
					resp.Body.Close()
				}
				return err == nil && resp.StatusCode == 200
			})

			img, err := tarball.ImageFromPath(demoImagePath(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.NewTag(fmt.Sprintf("127.0.0.1:%d/team/demo:1.0", port), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img); err != nil {
				t.Fatalf("push: %v", err)
			}
			dg, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			digest := dg.String()

			var job *store.Job
			waitFor(t, 60*time.Second, "the scan job of the pushed digest to finish", func() bool {
				js, _, err := e.st.ListJobs(ctx, store.JobFilter{Kind: jobScan, Key: digest}, store.Page{})
				if err != nil || len(js) == 0 {
					return false
				}
				job = &js[0]
				return job.State == store.JobDone || job.State == store.JobFailed
			})
			if job.State != store.JobDone {
				t.Fatalf("scan job %d: %s (%s)", job.ID, job.State, job.LastError)
			}
			var p scanPayload
			if err := json.Unmarshal(job.Payload, &p); err != nil || p.RegistryID != reg.ID || p.Repository != "team/demo" ||
				p.Tag != "1.0" || p.TriggeredBy != "webhook:local-distribution" || p.EventID == "" {
				t.Errorf("job payload %s (%v)", job.Payload, err)
			}
			var im struct {
				Digest string `json:"digest"`
				Counts struct{ Total, Critical int }
				Refs   []struct{ Registry, Repository, Tag string }
			}
			e.get("/api/v1/images/"+digest, &im)
			if im.Counts.Total < 100 || im.Counts.Critical == 0 {
				t.Errorf("pushed image findings: %+v", im.Counts)
			}
			wantRef := fmt.Sprintf("127.0.0.1:%d team/demo 1.0", port)
			found := false
			for _, r := range im.Refs {
				found = found || r.Registry+" "+r.Repository+" "+r.Tag == wantRef
			}
			if !found {
				t.Errorf("refs %+v lack %s", im.Refs, wantRef)
			}
			_, jobs, _ := e.st.ListJobs(ctx, store.JobFilter{Kind: jobScan}, store.Page{})
			if jobs != 1 {
				t.Errorf("%d scan jobs for one push, want 1", jobs)
			}

			// A finished job can be queued again through the API.
			st, body := e.do("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", job.ID), e.admin, nil)
			var nj jobJSON
			if st != 201 || json.Unmarshal(body, &nj) != nil || nj.ID == job.ID || nj.Key != digest {
				t.Fatalf("retry: %d %s", st, body)
			}
			waitFor(t, 60*time.Second, "the retried job", func() bool {
				j, err := e.st.GetJob(ctx, nj.ID)
				return err == nil && j.State == store.JobDone
			})
			if _, n, _ := e.st.ListScans(ctx, store.ScanFilter{ImageDigest: digest, Status: store.ScanSucceeded}, store.Page{}); n != 2 {
				t.Errorf("%d scans after a retry, want 2", n)
			}

			// What the registry sent: blob pushes (ignored) and one manifest push.
			var manifestPush []byte
			waitFor(t, 10*time.Second, "the capture endpoint to see the manifest push", func() bool {
				for _, body := range capt.all() {
					if strings.Contains(string(body), `"mediaType": "application/vnd.docker.distribution.manifest.v2+json"`) &&
						strings.Contains(string(body), `"action": "push"`) {
						manifestPush = body
						return true
					}
				}
				return false
			})
			if *updatePayloads && b.Name == "sqlite" {
				if err := os.WriteFile("testdata/distribution-push.json", manifestPush, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, body := range capt.all() {
					if strings.Contains(string(body), "rootfs.diff") {
						if err := os.WriteFile("testdata/distribution-blob-push.json", body, 0o644); err != nil {
							t.Fatal(err)
						}
						break
					}
				}
			}
		})
	}
}
