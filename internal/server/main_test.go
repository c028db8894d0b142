package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/store/pgtest"
	"github.com/bulwark-security/bulwark/internal/testlog"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// pg is the test PostgreSQL server (test-only state), stopped by TestMain.
var pg = pgtest.New()

func TestMain(m *testing.M) {
	if os.Getenv(killChildEnv) != "" {
		os.Exit(killChildMain())
	}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// backend is one of the two databases the tests run against.
type backend = pgtest.Backend

var backends = pg.Backends()

var testKey = []byte("0123456789abcdef0123456789abcdef")

// demoFiles writes the bundled demo (real advisories, real image) to a
// directory shared by the tests of this process.
var demoFiles = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "bulwark-server-test-demo-")
	if err != nil {
		return "", err
	}
	_, _, err = demo.WriteFiles(dir)
	return dir, err
})

// demoImagePath is the bundled demo image (a docker-save archive).
func demoImagePath(t testing.TB) string {
	t.Helper()
	dir, err := demoFiles()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.FromSlash(demo.ImagePath))
}

// advisoryFiles lists the bundled advisory sources; skip drops those whose
// base name contains any of the strings.
func advisoryFiles(t testing.TB, skip ...string) []string {
	t.Helper()
	dir, err := demoFiles()
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(demo.DBDir)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
next:
	for _, e := range ents {
		for _, s := range skip {
			if strings.Contains(e.Name(), s) {
				continue next
			}
		}
		out = append(out, filepath.Join(dir, filepath.FromSlash(demo.DBDir), e.Name()))
	}
	return out
}

// importDB imports advisory files into a new database directory.
func importDB(t testing.TB, paths []string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if _, err := vulndb.Import(context.Background(), dir, paths, vulndb.ImportOptions{}); err != nil {
		t.Fatalf("import advisories: %v", err)
	}
	return dir
}

// env is a running server over real TLS on 127.0.0.1 with its store and
// an HTTP client that trusts the generated certificate.
type env struct {
	t      testing.TB
	srv    *Server
	st     *store.Store
	client *http.Client
	url    string
	caPath string
	admin  string // admin token
	logs   *testlog.Buffer
	cancel context.CancelFunc
	done   chan error
}

// startEnv opens a store at dsn, starts a server with cfg (TLS, port 0,
// a temporary data dir unless set) and creates an admin token.
func startEnv(t testing.TB, dsn string, cfg Config) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg, Deps{Store: st, Logger: log})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	e := &env{t: t, srv: srv, st: st, url: srv.URL(), logs: logs, done: make(chan error, 1)}
	e.caPath = filepath.Join(cfg.DataDir, selfSignedCert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if srv.tlsConfig != nil {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(e.caPath)
		if err != nil && cfg.TLSCert != "" {
			pem, err = os.ReadFile(cfg.TLSCert)
		}
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	tr.MaxIdleConnsPerHost = 64
	e.client = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	rctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	go func() { e.done <- srv.Run(rctx) }()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", tail(logs.String(), 6000))
		}
	})
	secret, _, err := st.CreateToken(ctx, "test-admin", store.RoleAdmin, time.Time{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.admin = secret
	return e
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stop shuts the server down (idempotent) and returns Run's error.
func (e *env) stop() error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		return err
	case <-time.After(30 * time.Second):
		e.t.Errorf("server did not stop within 30s")
		return nil
	}
}

// token makes a token of role.
func (e *env) token(role store.Role) string {
	e.t.Helper()
	secret, _, err := e.st.CreateToken(context.Background(), "test-"+string(role)+fmt.Sprint(time.Now().UnixNano()), role, time.Time{}, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// do sends a request with token (none when empty) and a JSON body (a
// []byte is sent as is) and returns the status and body.
func (e *env) do(method, path, token string, body any, hdr ...string) (int, []byte) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// get decodes a 200 JSON answer into v.
func (e *env) get(path string, v any) {
	e.t.Helper()
	status, b := e.do("GET", path, e.admin, nil)
	if status != http.StatusOK {
		e.t.Fatalf("GET %s = %d: %s", path, status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// errorCode reads the code of a JSON error body.
func errorCode(b []byte) string {
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil {
		return ""
	}
	return eb.Error.Code
}

func httptestClient() *http.Client { return &http.Client{Timeout: 60 * time.Second} }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
