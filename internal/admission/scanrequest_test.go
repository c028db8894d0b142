package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/store"
)

const scanPolicies = `apiVersion: bulwark.dev/v1alpha1
kind: PolicyList
items:
  - apiVersion: bulwark.dev/v1alpha1
    kind: Policy
    metadata: {name: scan-generous}
    spec:
      mode: deny
      scope: {namespaces: ["generous"]}
      vulnerabilities: {knownExploited: true, unscanned: scan, scanTimeout: 7s}
  - apiVersion: bulwark.dev/v1alpha1
    kind: Policy
    metadata: {name: scan-tiny}
    spec:
      mode: deny
      scope: {namespaces: ["tiny"]}
      vulnerabilities: {knownExploited: true, unscanned: scan, scanTimeout: 1ms}
`

// pushVariant pushes the demo image with a label (so a digest central has
// never seen, with the demo's packages) and returns its tag and digest.
func pushVariant(t *testing.T, c *central, repo, label string) (string, string) {
	t.Helper()
	dir, err := demoDir()
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, filepath.FromSlash(demo.ImagePath)), nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{"variant": label}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	refStr := strings.TrimPrefix(c.Registry.URL, "http://") + "/" + repo + ":1.0"
	ref, err := name.ParseReference(refStr, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return refStr, d.String()
}

// TestScanOnDemand: images central has never scanned, under `unscanned:
// scan`. Real registry, real central on SQLite with a worker that pulls,
// scans and matches against the demo database.
func TestScanOnDemand(t *testing.T) {
	c := startCentralWith(t, true)
	kev := c.kevFinding(t)
	ctx := context.Background()
	if _, err := c.Store.CreateRegistry(ctx, store.Registry{Name: "local", URL: c.Registry.URL, Kind: store.RegistryGeneric,
		Insecure: true}); err != nil {
		t.Fatal(err)
	}
	w := startWebhook(t, Config{Cluster: "test"}, loadPolicies(t, scanPolicies), c, false)

	// A tiny budget: denied with the documented message, and the job is
	// queued in central (the next attempt finds its result).
	slowRef, slowDigest := pushVariant(t, c, "shop/slow", "slow")
	if _, err := c.Store.GetImage(ctx, slowDigest); err == nil {
		t.Fatal("the variant image is already known to central")
	}
	_, resp, raw := w.send(t, review("t1", "CREATE", "Pod", "tiny", "p", podObj("p", slowRef)))
	if resp == nil || resp.Allowed {
		t.Fatalf("tiny budget: %s", raw)
	}
	for _, want := range []string{"scan-tiny", "never been scanned", "scan requested and still running", "next attempt"} {
		if !strings.Contains(resp.Result.Message, want) {
			t.Errorf("timeout denial lacks %q:\n%s", want, resp.Result.Message)
		}
	}
	jobs, _, err := c.Store.ListJobs(ctx, store.JobFilter{Key: slowDigest}, store.Page{Limit: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs for %s: %v %+v", slowDigest, err, jobs)
	}
	// The next attempt, once the job ran, uses its result.
	waitFor(t, 30*time.Second, func() bool {
		_, err := c.Store.GetImage(ctx, slowDigest)
		return err == nil
	})
	_, resp, raw = w.send(t, review("t2", "CREATE", "Pod", "tiny", "p", podObj("p", slowRef)))
	if resp == nil || resp.Allowed || !strings.Contains(resp.Result.Message, kev.Vulnerability.ID) {
		t.Fatalf("after the scan: %s", raw)
	}

	// A generous budget: the review waits for central's worker and the
	// verdict names the real KEV finding.
	freshRef, freshDigest := pushVariant(t, c, "shop/fresh", "fresh")
	start := time.Now()
	_, resp, raw = w.send(t, review("g1", "CREATE", "Pod", "generous", "p", podObj("p", freshRef)))
	if resp == nil || resp.Allowed {
		t.Fatalf("generous budget: %s", raw)
	}
	msg := resp.Result.Message
	for _, want := range []string{"scan-generous", kev.Vulnerability.ID, "known exploited"} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "never been scanned") {
		t.Errorf("judged as unscanned:\n%s", msg)
	}
	t.Logf("scan on demand took %s", time.Since(start))
	if _, err := c.Store.GetImage(ctx, freshDigest); err != nil {
		t.Errorf("central has no scan of %s: %v", freshDigest, err)
	}
	// Cached: the same image again is judged without asking central.
	if _, resp, raw := w.send(t, review("g2", "CREATE", "Pod", "generous", "p", podObj("p", freshRef))); resp == nil || resp.Allowed ||
		!strings.Contains(resp.Result.Message, kev.Vulnerability.ID) {
		t.Fatalf("cached: %s", raw)
	}
}

// TestScanRequestAPI: the central endpoint, idempotent per digest, and
// hostile references answered 400.
func TestScanRequestAPI(t *testing.T) {
	c := startCentral(t) // no workers: jobs stay pending
	ctx := context.Background()
	if _, err := c.Store.CreateRegistry(ctx, store.Registry{Name: "local", URL: c.Registry.URL, Kind: store.RegistryGeneric,
		Insecure: true}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(c.Registry.URL, "http://")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS}}
	post := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", c.URL+"/api/v1/scans/requests", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+c.Agent)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	d := "sha256:" + strings.Repeat("ab", 32)
	st1, b1 := post(`{"ref":"` + host + `/shop/x@` + d + `"}`)
	st2, b2 := post(`{"ref":"` + host + `/shop/y@` + d + `"}`)
	if st1 != 202 || st2 != 202 || !strings.Contains(b1, `"created":true`) || !strings.Contains(b2, `"created":false`) ||
		!strings.Contains(b1, `"state":"pending"`) {
		t.Fatalf("requests: %d %s / %d %s", st1, b1, st2, b2)
	}
	var a1, a2 scanRequestAnswer
	if err := json.Unmarshal([]byte(b1), &a1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(b2), &a2); err != nil {
		t.Fatal(err)
	}
	if a1.JobID == 0 || a1.JobID != a2.JobID {
		t.Errorf("second request got another job: %s vs %s", b1, b2)
	}
	jobs, _, err := c.Store.ListJobs(ctx, store.JobFilter{Key: d}, store.Page{Limit: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %v %d", err, len(jobs))
	}
	// A tag is resolved through the registry.
	if st, b := post(`{"ref":"` + c.Ref + `"}`); st != 202 || !strings.Contains(b, c.Digest) {
		t.Errorf("by tag: %d %s", st, b)
	}
	// Unknown registry: 409, not a job nobody can run.
	if st, b := post(`{"ref":"elsewhere.example.com/a@` + d + `"}`); st != 409 {
		t.Errorf("unknown registry: %d %s", st, b)
	}
	for _, bad := range []string{`{}`, `{"ref":""}`, `{"ref":"` + host + `/Shop/X@` + d + `"}`, `{"ref":"` + host + `/a@sha256:zz"}`,
		`{"ref":"` + host + `/a:` + strings.Repeat("t", 200) + `"}`, `{"ref":"` + strings.Repeat("a/", 400) + `"}`,
		`{"ref":"` + host + `/a/../b@` + d + `"}`, `{"ref":"a b"}`, `{"ref":"` + host + `/a","extra":1}`, `not json`,
		`{"ref":"` + host + `/a@sha256:` + strings.Repeat("a", 63) + `"}`} {
		if st, b := post(bad); st != 400 {
			t.Errorf("%s: %d %s, want 400", bad, st, b)
		}
	}
}
