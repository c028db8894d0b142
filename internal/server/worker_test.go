package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// slowRegistry is go-containerregistry's in-process registry with blob
// downloads delayed by delay (so a scan is in flight long enough to
// interrupt).
func slowRegistry(delay *atomic.Int64) *httptest.Server {
	h := registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && strings.Contains(r.URL.Path, "/blobs/") {
			time.Sleep(time.Duration(delay.Load()))
		}
		h.ServeHTTP(w, r)
	}))
}

// TestGracefulShutdown: a scan that outlives the grace period is released
// back to the queue without counting the attempt, and done by the next
// server; a scan that fits in the grace period finishes.
func TestGracefulShutdown(t *testing.T) {
	var delay atomic.Int64
	reg := slowRegistry(&delay)
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	digests := pushDemoVariants(t, host, "slow/app", 2)
	dsn := backends[0].DSN(t)
	dbDir := importDB(t, advisoryFiles(t))
	ctx := context.Background()
	cfg := Config{Workers: 1, DBDir: dbDir, ShutdownGrace: 700 * time.Millisecond, SweepInterval: -1}

	e := startEnv(t, dsn, cfg)
	createRegistry(t, e.st, "slow", reg.URL, "distribution", distSecret)
	delay.Store(int64(5 * time.Second))
	notify := func(e *env, i int) int64 {
		st, b := e.do("POST", "/api/v1/hooks/distribution", "", distributionPush(fmt.Sprint("g", i), "slow/app", fmt.Sprint("v", i), digests[i]),
			"Authorization", "Bearer "+distSecret)
		var hr hookResponse
		if st != 202 || json.Unmarshal(b, &hr) != nil || len(hr.Jobs) != 1 {
			t.Fatalf("notify: %d %s", st, b)
		}
		return hr.Jobs[0]
	}
	id := notify(e, 0)
	waitFor(t, 10*time.Second, "the job to run", func() bool {
		j, err := e.st.GetJob(ctx, id)
		return err == nil && j.State == store.JobRunning
	})
	start := time.Now()
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %s with a 700ms grace period", d)
	}
	j, err := e.st.GetJob(ctx, id)
	if err != nil || j.State != store.JobPending || j.Attempts != 0 || j.ClaimedBy != "" {
		t.Fatalf("after shutdown: %+v, %v (want pending, attempt not counted)", j, err)
	}
	if !strings.Contains(e.logs.String(), "released running job at shutdown") {
		t.Errorf("no release logged")
	}

	// The next server takes it; this time a scan finishes within the grace.
	delay.Store(int64(300 * time.Millisecond))
	cfg.ShutdownGrace = 20 * time.Second
	e2 := startEnv(t, dsn, cfg)
	waitFor(t, 30*time.Second, "the released job to be done", func() bool {
		j, err := e2.st.GetJob(ctx, id)
		return err == nil && j.State == store.JobDone
	})
	if j, _ := e2.st.GetJob(ctx, id); j.Attempts != 1 {
		t.Errorf("released job took %d attempts, want 1", j.Attempts)
	}
	id2 := notify(e2, 1)
	waitFor(t, 10*time.Second, "the second job to run", func() bool {
		j, err := e2.st.GetJob(ctx, id2)
		return err == nil && j.State == store.JobRunning
	})
	if err := e2.stop(); err != nil {
		t.Fatal(err)
	}
	if j, err := e2.st.GetJob(ctx, id2); err != nil || j.State != store.JobDone {
		t.Errorf("a job that fits in the grace period: %+v, %v", j, err)
	}
}

// TestRematch: when the vulnerability database changes on disk, the
// watcher reloads it and every kept-current stored SBOM is matched again
// without pulling an image: new advisories become "new" finding events,
// removed ones "fixed" events, with source "rematch". An image not seen
// within the window and not running is skipped.
func TestRematch(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			withoutGo := advisoryFiles(t, "golang")
			full := advisoryFiles(t)
			dbDir := importDB(t, withoutGo)
			dsn := b.DSN(t)
			e := startEnv(t, dsn, Config{Workers: -1, DBDir: dbDir, DBWatchInterval: 100 * time.Millisecond,
				RematchWindow: 7 * 24 * time.Hour, SweepInterval: -1})
			saved, err := e.srv.ScanLocal(ctx, "docker-archive:"+demoImagePath(t), "test")
			if err != nil {
				t.Fatal(err)
			}
			before := saved.Diff.Counts.Total()
			im, err := e.st.GetImage(ctx, saved.Diff.New[0].ImageDigest)
			if err != nil {
				t.Fatal(err)
			}
			digest := im.Digest

			// Two more images, last seen 60 days ago: one only stored, one
			// running in a cluster.
			old, err := store.Open(ctx, dsn, store.Options{SecretKey: testKey, Now: func() time.Time { return time.Now().Add(-60 * 24 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			sb, err := e.st.GetSBOM(ctx, digest)
			if err != nil {
				t.Fatal(err)
			}
			oldDigests := []string{"sha256:" + strings.Repeat("1", 64), "sha256:" + strings.Repeat("2", 64)}
			for _, d := range oldDigests {
				res := &scan.Result{SchemaVersion: scan.SchemaVersion, Tool: sb.Tool, OS: sb.OS, Packages: sb.Packages,
					Target: scan.Target{Kind: "image", Name: "old", Digest: d}}
				if err := e.srv.vdb.match(ctx, res); err != nil {
					t.Fatal(err)
				}
				if _, err := old.SaveScan(ctx, res, store.ScanMeta{TriggeredBy: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := old.UpsertCluster(ctx, store.Cluster{Name: "prod"}); err != nil {
				t.Fatal(err)
			}
			if err := old.RecordSighting(ctx, oldDigests[1], store.Sighting{Cluster: "prod", Namespace: "web", Workload: "Deployment/web"}); err != nil {
				t.Fatal(err)
			}

			// The Go advisories arrive: import into the watched directory.
			if _, err := vulndb.Import(ctx, dbDir, full, vulndb.ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			var rep RematchReport
			waitFor(t, 30*time.Second, "the re-match after the import", func() bool {
				rep = e.srv.rematch.snapshot()
				return !rep.Running && rep.Trigger == "database changed"
			})
			if rep.Images != 2 || rep.Skipped != 1 || rep.Failed != 0 || rep.NewFindings == 0 {
				t.Fatalf("re-match report %+v: want 2 images (recent + running), 1 skipped, new findings", rep)
			}
			after, _ := e.st.GetImage(ctx, digest)
			if after.Counts.Total() != before+rep.NewFindings/2 {
				t.Errorf("findings %d → %d with %d new events over 2 images", before, after.Counts.Total(), rep.NewFindings)
			}
			evs, n, err := e.st.ListFindingEvents(ctx, store.EventFilter{ImageDigest: digest, Source: store.SourceRematch, Kind: store.EventNew}, store.Page{Limit: 5})
			if err != nil || n != rep.NewFindings/2 || !strings.HasPrefix(evs[0].VulnID, "GO-") {
				t.Errorf("rematch events: %d (%v) %+v", n, err, evs)
			}
			if _, n, _ := e.st.ListFindingEvents(ctx, store.EventFilter{ImageDigest: oldDigests[0], Source: store.SourceRematch}, store.Page{}); n != 0 {
				t.Errorf("the skipped image got %d re-match events", n)
			}

			// The Go advisories go away again (another index renamed into
			// place): the same findings are fixed. POST /db/rematch works too.
			smaller := importDB(t, withoutGo)
			if err := os.Rename(filepath.Join(smaller, indexFileName), filepath.Join(dbDir, indexFileName)); err != nil {
				t.Fatal(err)
			}
			if st, b := e.do("POST", "/api/v1/db/rematch", e.admin, nil); st != 202 {
				t.Fatalf("rematch: %d %s", st, b)
			}
			// The watcher may see the rename before the request: count the
			// fixed events, whichever re-match wrote them.
			waitFor(t, 30*time.Second, "the second re-match", func() bool {
				r := e.srv.rematch.snapshot()
				_, n, _ := e.st.ListFindingEvents(ctx, store.EventFilter{Kind: store.EventFixed, Source: store.SourceRematch}, store.Page{Limit: 1})
				return !r.Running && r.StartedAt.After(rep.StartedAt) && n >= rep.NewFindings
			})
			rep2 := e.srv.rematch.snapshot()
			if _, n, _ := e.st.ListFindingEvents(ctx, store.EventFilter{Kind: store.EventFixed, Source: store.SourceRematch}, store.Page{Limit: 1}); n != rep.NewFindings {
				t.Errorf("%d fixed events after the advisories went away, want %d", n, rep.NewFindings)
			}
			var db struct {
				Loaded  bool          `json:"loaded"`
				Rematch RematchReport `json:"rematch"`
			}
			e.get("/api/v1/db", &db)
			if !db.Loaded || db.Rematch.StartedAt.Before(rep2.StartedAt) {
				t.Errorf("GET /api/v1/db: %+v", db)
			}
			if final, _ := e.st.GetImage(ctx, digest); final.Counts.Total() != before {
				t.Errorf("findings after the advisories went away: %d, want %d", final.Counts.Total(), before)
			}
		})
	}
}

// TestSweep lists a registry without notifications (an in-process
// go-containerregistry registry), scans what is new, and on a second
// sweep finds nothing new. Test connection lists the catalog.
func TestSweep(t *testing.T) {
	var delay atomic.Int64
	reg := slowRegistry(&delay)
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	a := pushDemoVariants(t, host, "team/a", 2)
	ctx := context.Background()
	e := startEnv(t, backends[0].DSN(t), Config{Workers: 2, DBDir: importDB(t, advisoryFiles(t)), SweepInterval: time.Hour})
	st, b := e.do("POST", "/api/v1/registries", e.admin, map[string]any{"name": "plain", "url": reg.URL, "kind": "generic", "insecure": true})
	if st != 201 {
		t.Fatalf("create: %d %s", st, b)
	}
	var r registryJSON
	_ = json.Unmarshal(b, &r)
	var ct connectionTest
	st, b = e.do("POST", fmt.Sprintf("/api/v1/registries/%d/test", r.ID), e.admin, nil)
	if st != 200 || json.Unmarshal(b, &ct) != nil || !ct.OK || len(ct.Repositories) != 1 || ct.Repositories[0] != "team/a" {
		t.Fatalf("test connection: %d %s", st, b)
	}
	if st, b := e.do("POST", fmt.Sprintf("/api/v1/registries/%d/sweep", r.ID), e.admin, nil); st != 202 {
		t.Fatalf("sweep now: %d %s", st, b)
	}
	waitFor(t, 60*time.Second, "the swept images to be scanned", func() bool {
		_, n, _ := e.st.ListImages(ctx, store.ImageFilter{Registry: host}, store.Page{})
		qs, _ := e.st.QueueStats(ctx)
		return n == 2 && qs.Pending == 0 && qs.Running == 0
	})
	for _, d := range a {
		if _, err := e.st.GetSBOM(ctx, d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	got, _ := e.st.GetRegistry(ctx, r.ID)
	if got.LastSweepAt.IsZero() || got.LastSweepError != "" {
		t.Errorf("sweep not recorded: %+v", got)
	}
	// A new tag of a known digest and one new image: one new scan.
	b2 := pushDemoVariants(t, host, "team/b", 3)
	st, b = e.do("POST", fmt.Sprintf("/api/v1/registries/%d/sweep", r.ID), e.admin, nil)
	if st != 202 {
		t.Fatalf("sweep now: %d %s", st, b)
	}
	waitFor(t, 60*time.Second, "the second sweep", func() bool {
		_, n, _ := e.st.ListImages(ctx, store.ImageFilter{}, store.Page{})
		qs, _ := e.st.QueueStats(ctx)
		return n == 3 && qs.Pending == 0 && qs.Running == 0
	})
	_, scans, _ := e.st.ListJobs(ctx, store.JobFilter{Kind: jobScan}, store.Page{})
	if scans != 3 {
		t.Errorf("%d scan jobs for 3 distinct digests", scans)
	}
	im, err := e.st.GetImage(ctx, b2[0])
	if err != nil || len(im.Refs) < 2 {
		t.Errorf("the digest pushed to two repositories: %+v, %v", im, err)
	}
}

// TestTLS: the generated certificate (ECDSA P-256, the loopback names
// and the host name) is kept in the data directory with a 0600 key and
// reused; plain HTTP is refused off loopback; given files are used.
func TestTLS(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, backends[0].DSN(t), store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := t.TempDir()
	newSrv := func(cfg Config) (*Server, error) {
		cfg.Listen = "127.0.0.1:0"
		return New(cfg, Deps{Store: st})
	}
	s1, err := newSrv(Config{DataDir: data, Hostname: "central.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	s2, err := newSrv(Config{DataDir: data, Hostname: "central.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if s1.Fingerprint() == "" || s1.Fingerprint() != s2.Fingerprint() {
		t.Errorf("certificate not reused: %s vs %s", s1.Fingerprint(), s2.Fingerprint())
	}
	pemBytes, _ := os.ReadFile(filepath.Join(data, selfSignedCert))
	blk, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", cert.PublicKey)
	}
	for _, n := range []string{"localhost", "127.0.0.1", "::1", "central.example.test"} {
		if err := cert.VerifyHostname(n); err != nil {
			t.Errorf("certificate does not cover %s: %v", n, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, selfSignedKey)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", fi.Mode(), err)
	}
	// A new host name makes a new certificate.
	s3, err := newSrv(Config{DataDir: data, Hostname: "other.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	s3.Close()
	if s3.Fingerprint() == s1.Fingerprint() {
		t.Errorf("certificate reused for another host name")
	}
	// Given files win.
	s4, err := newSrv(Config{TLSCert: filepath.Join(data, selfSignedCert), TLSKey: filepath.Join(data, selfSignedKey)})
	if err != nil {
		t.Fatal(err)
	}
	s4.Close()
	if s4.Fingerprint() != s3.Fingerprint() {
		t.Errorf("--tls-cert not used")
	}
	if _, err := newSrv(Config{TLSCert: "x"}); err == nil {
		t.Errorf("--tls-cert without --tls-key accepted")
	}
	// Plain HTTP only on loopback.
	if _, err := New(Config{Listen: "0.0.0.0:0", InsecureHTTP: true}, Deps{Store: st}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("insecure HTTP on 0.0.0.0: %v", err)
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		s, err := New(Config{Listen: addr, InsecureHTTP: true}, Deps{Store: st})
		if err != nil {
			if strings.Contains(addr, "::1") && strings.Contains(err.Error(), "address") {
				continue // no IPv6 loopback here
			}
			t.Errorf("insecure HTTP on %s: %v", addr, err)
			continue
		}
		s.Close()
	}
	// Over the wire: TLS 1.2+ only, and the certificate is the one logged.
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1})
	conn, err := tls.Dial("tcp", e.srv.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}) //nolint:gosec // checking refusal
	if err == nil {
		conn.Close()
		t.Errorf("TLS 1.1 accepted")
	}
	resp, err := e.client.Get(e.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := fingerprint(resp.TLS.PeerCertificates[0].Raw); got != e.srv.Fingerprint() || !strings.Contains(e.logs.String(), got) {
		t.Errorf("served certificate %s, logged %s", got, e.srv.Fingerprint())
	}
}

// TestOperations: readiness without a database, the console mount, and
// metrics on a separate listener without authentication.
func TestOperations(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, backends[0].DSN(t), store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "console:"+r.URL.Path)
	})
	srv, err := New(Config{Listen: "127.0.0.1:0", InsecureHTTP: true, MetricsListen: "127.0.0.1:0", Workers: -1,
		DBDir: filepath.Join(t.TempDir(), "none")}, Deps{Store: st, Console: console})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	defer func() { cancel(); <-done }()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := get(srv.URL() + "/readyz"); st != 503 || !strings.Contains(b, "vulndb") {
		t.Errorf("readyz without a database: %d %s", st, b)
	}
	if st, b := get(srv.URL() + "/images/x"); st != 200 || b != "console:/images/x" {
		t.Errorf("console mount: %d %s", st, b)
	}
	if st, b := get(srv.URL() + "/api/v1/nothing"); st != 404 || !strings.Contains(b, `"not_found"`) {
		t.Errorf("API 404 went to the console: %d %s", st, b)
	}
	if st, _ := get(srv.URL() + "/metrics"); st != 401 {
		t.Errorf("metrics on the API listener without a token: %d", st)
	}
	if st, b := get("http://" + srv.MetricsAddr().String() + "/metrics"); st != 200 || !strings.Contains(b, "bulwark_queue_jobs") {
		t.Errorf("metrics listener: %d %.200s", st, b)
	}
}

// TestScanFailureBacksOff: a registry that cannot be reached fails the
// attempt; the job goes back to pending after a backoff with the error,
// and a failed scan is recorded.
func TestScanFailureBacksOff(t *testing.T) {
	ctx := context.Background()
	e := startEnv(t, backends[0].DSN(t), Config{Workers: 1, DBDir: importDB(t, advisoryFiles(t)), SweepInterval: -1})
	port := freePort(t) // nothing listens there
	createRegistry(t, e.st, "gone", fmt.Sprintf("http://127.0.0.1:%d", port), "distribution", distSecret)
	d := "sha256:" + strings.Repeat("9", 64)
	st, b := e.do("POST", "/api/v1/hooks/distribution", "", distributionPush("f1", "team/app", "1", d), "Authorization", "Bearer "+distSecret)
	if st != 202 {
		t.Fatalf("notify: %d %s", st, b)
	}
	var j store.Job
	waitFor(t, 20*time.Second, "the failed attempt", func() bool {
		js, _, err := e.st.ListJobs(ctx, store.JobFilter{Key: d}, store.Page{})
		if err != nil || len(js) == 0 {
			return false
		}
		j = js[0]
		return j.State == store.JobPending && j.Attempts == 1
	})
	if !strings.Contains(j.LastError, "connection refused") || time.Until(j.RunAt) < 20*time.Second {
		t.Errorf("after a failure: %+v (want the error and a backoff of ~30s)", j)
	}
	scans, n, err := e.st.ListScans(ctx, store.ScanFilter{ImageDigest: d, Status: store.ScanFailed}, store.Page{})
	if err != nil || n != 1 || !strings.Contains(scans[0].Error, "connection refused") || scans[0].TriggeredBy != "webhook:gone" {
		t.Errorf("failed scan record: %+v, %v", scans, err)
	}
	// Retry through the API is refused while the job is pending.
	if st, b := e.do("POST", fmt.Sprintf("/api/v1/jobs/%d/retry", j.ID), e.admin, nil); st != 409 {
		t.Errorf("retry of a pending job: %d %s", st, b)
	}
}
