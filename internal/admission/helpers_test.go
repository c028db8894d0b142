package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/server"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// demoDir holds the bundled demo (a real image, real advisories) on disk,
// shared by the tests of this process.
var demoDir = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "bulwark-admission-test-")
	if err != nil {
		return "", err
	}
	_, _, err = demo.WriteFiles(dir)
	if err != nil {
		return "", err
	}
	// The vulnerability database, imported once.
	ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(demo.DBDir)))
	if err != nil {
		return "", err
	}
	var paths []string
	for _, e := range ents {
		paths = append(paths, filepath.Join(dir, filepath.FromSlash(demo.DBDir), e.Name()))
	}
	if _, err := vulndb.Import(context.Background(), filepath.Join(dir, "db"), paths, vulndb.ImportOptions{}); err != nil {
		return "", err
	}
	return dir, nil
})

// central is a real Bulwark central (internal/server on SQLite, real TLS)
// holding a real scan of the demo image, pushed to a real in-process
// registry under Repo:1.0.
type central struct {
	URL, CAPath string
	TLS         *tls.Config
	Agent       string // agent token
	Store       *store.Store
	Repo        string // registry host/demo
	Ref         string // Repo:1.0
	Digest      string // manifest digest
	Result      *scan.Result
	Registry    *httptest.Server
	stop        func()
}

func startCentral(t testing.TB) *central { t.Helper(); return startCentralWith(t, false) }

// startCentralWith starts central; scanning gives it a worker and the demo
// vulnerability database, so that it runs scan jobs itself.
func startCentralWith(t testing.TB, scanning bool) *central {
	t.Helper()
	dir, err := demoDir()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A real registry with the demo image.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	img, err := tarball.ImageFromPath(filepath.Join(dir, filepath.FromSlash(demo.ImagePath)), nil)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(reg.URL, "http://")
	c := &central{Repo: host + "/shop/demo", Registry: reg}
	c.Ref = c.Repo + ":1.0"
	ref, err := name.ParseReference(c.Ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	// A real scan of it.
	s := &scan.Scanner{Extractors: list.All(), Version: "test"}
	res, err := s.Image(ctx, c.Ref, image.Options{Insecure: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, err := vulndb.Open(filepath.Join(dir, "db"), vulndb.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := scan.Match(ctx, db, res); err != nil {
		t.Fatal(err)
	}
	c.Result, c.Digest = res, res.Target.Digest
	// Central, on SQLite, over TLS.
	data := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(data, "bulwark.db"), store.Options{SecretKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	scfg := server.Config{Listen: "127.0.0.1:0", DataDir: data, Workers: -1, SweepInterval: -1, DBWatchInterval: -1}
	if scanning {
		scfg.Workers, scfg.DBDir = 1, filepath.Join(dir, "db")
	}
	srv, err := server.New(scfg,
		server.Deps{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	c.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("central did not stop")
		}
	}
	t.Cleanup(func() { c.Stop() })
	c.URL, c.Store = srv.URL(), st
	c.CAPath = filepath.Join(data, "tls", "self-signed.crt")
	pem, err := os.ReadFile(c.CAPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	ci, _, err := st.CreateToken(ctx, "ci", store.RoleCI, time.Time{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	c.Agent, _, err = st.CreateToken(ctx, "admission", store.RoleAgent, time.Time{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(res)
	req, _ := http.NewRequest("POST", c.URL+"/api/v1/scans", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ci)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: c.TLS}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload scan: %s %s", resp.Status, b)
	}
	return c
}

// Stop shuts central down (idempotent).
func (c *central) Stop() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// kevFinding is a known-exploited finding of the demo scan.
func (c *central) kevFinding(t testing.TB) scan.Finding {
	t.Helper()
	for _, f := range c.Result.Findings {
		if f.Vulnerability.KEV != nil {
			return f
		}
	}
	t.Fatal("the demo scan has no KEV finding")
	return scan.Finding{}
}

func newLoader(t testing.TB) *policy.Loader {
	t.Helper()
	env, err := celeval.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	l, err := policy.NewLoader(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// staticPolicies is a PolicySource over one Set.
type staticPolicies struct{ set *policy.Set }

func (s staticPolicies) Current() *policy.Set { return s.set }

func loadPolicies(t testing.TB, docs string) staticPolicies {
	t.Helper()
	set, err := newLoader(t).Load(context.Background(), policy.Source{Name: "test.yaml", Data: []byte(docs)})
	if err != nil {
		t.Fatal(err)
	}
	return staticPolicies{set}
}

func policyDoc(name, spec string) string {
	return "apiVersion: bulwark.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: " + name + "\nspec:\n" + spec + "\n---\n"
}

// review builds an AdmissionReview body.
func review(uid, op, kind, ns, name string, obj any) []byte {
	raw, _ := json.Marshal(obj)
	group, version := "", "v1"
	switch kind {
	case "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet":
		group = "apps"
	case "Job", "CronJob":
		group = "batch"
	}
	r := map[string]any{
		"uid": uid, "kind": map[string]string{"group": group, "version": version, "kind": kind},
		"resource":  map[string]string{"group": group, "version": version, "resource": strings.ToLower(kind) + "s"},
		"namespace": ns, "name": name, "operation": op,
		"userInfo": map[string]any{"username": "alice", "groups": []string{"dev", "system:authenticated"}},
	}
	if obj != nil {
		r["object"] = json.RawMessage(raw)
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": r})
	return b
}

func podObj(name string, images ...string) map[string]any {
	var cs []any
	for i, im := range images {
		cs = append(cs, map[string]any{"name": fmt.Sprintf("c%d", i), "image": im})
	}
	return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name, "labels": map[string]string{"team": "x"}},
		"spec": map[string]any{"containers": cs}}
}
