package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "s3cret-token-for-the-api-server"

// newTestReceiver serves a receiver over TLS with client-certificate
// verification, as central's --audit-listen does.
func newTestReceiver(t *testing.T, cfg ReceiverConfig, pcfg Config) (*httptest.Server, *Receiver, *Processor, *memSink, *testPKI) {
	t.Helper()
	pki := newPKI(t)
	sink := newMemSink()
	proc, err := NewProcessor(pcfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Clients == nil {
		cfg.Clients = []Client{{Cluster: "prod", Token: testToken}, {Cluster: "edge", CN: "kube-apiserver-edge"}}
	}
	rcv, err := NewReceiver(cfg, proc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rcv.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	srv := httptest.NewUnstartedServer(rcv)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the foreign-CA handshake failure is expected
	srv.TLS, err = ServerTLSConfig(pki.server, pki.caPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, rcv, proc, sink, pki
}

func client(t *testing.T, pki *testPKI, certCN string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	cfg := &tls.Config{RootCAs: pool}
	if certCN != "" {
		c, k := pki.issue(t, certCN, x509.ExtKeyUsageClientAuth)
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
}

func post(t *testing.T, c *http.Client, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReceiverAuthentication(t *testing.T) {
	srv, _, _, sink, pki := newTestReceiver(t, ReceiverConfig{}, Config{})
	body := eventList(privilegedPod("a1", "default", "p1"))
	for _, tc := range []struct {
		name, cn, token string
		want            int
		cluster         string
	}{
		{"no credentials", "", "", 401, ""},
		{"wrong token", "", "not-the-token-at-all", 401, ""},
		{"token", "", testToken, 200, "prod"},
		{"certificate of another CN", "mallory", "", 403, ""},
		{"certificate", "kube-apiserver-edge", "", 200, "edge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, rb := post(t, client(t, pki, tc.cn), srv.URL, tc.token, body)
			if st != tc.want {
				t.Fatalf("status %d (%s), want %d", st, rb, tc.want)
			}
		})
	}
	// A certificate signed by another CA does not even complete the handshake.
	other := newPKI(t)
	c := client(t, pki, "")
	cc, ck := other.issue(t, "kube-apiserver-edge", x509.ExtKeyUsageClientAuth)
	cert, _ := tls.X509KeyPair(cc, ck)
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
	req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(body))
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("foreign client certificate accepted: %d", resp.StatusCode)
	}
	clusters := map[string]bool{}
	for _, a := range sink.all() {
		clusters[a.Cluster] = true
	}
	if !clusters["prod"] || !clusters["edge"] || len(clusters) != 2 {
		t.Errorf("alert clusters %v, want prod (token) and edge (certificate)", clusters)
	}
}

func TestReceiverBadInput(t *testing.T) {
	srv, rcv, _, sink, pki := newTestReceiver(t, ReceiverConfig{MaxBodyBytes: 64 << 10, MaxEvents: 5}, Config{})
	c := client(t, pki, "")
	deep := `{"kind":"EventList","items":[{"verb":"get","requestObject":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat(`}`, 20000) + `}]}`
	many := make([]string, 6)
	for i := range many {
		many[i] = `{"verb":"get"}`
	}
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"not JSON", `hello`, 400},
		{"truncated", eventList(privilegedPod("x", "d", "p"))[:200], 400},
		{"wrong kind", `{"kind":"PodList","items":[]}`, 400},
		{"item not an object", `{"kind":"EventList","items":[1]}`, 400},
		{"bad item after good ones", eventList(privilegedPod("x", "d", "p"), `{"verb":5}`), 400},
		{"deeply nested (also too large)", deep, 413},
		{"too large", eventList(privilegedPod("x", "d", strings.Repeat("p", 70<<10))), 413},
		{"too many events", eventList(many...), 413},
		{"empty list", `{"kind":"EventList","items":[]}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, rb := post(t, c, srv.URL, testToken, tc.body)
			if st != tc.want {
				t.Fatalf("status %d (%s), want %d", st, rb, tc.want)
			}
			if st >= 400 && !strings.Contains(rb, `"error"`) {
				t.Errorf("no error message: %s", rb)
			}
		})
	}
	// Nesting alone (within the size limit) is a clear 400.
	srv2, _, _, _, pki2 := newTestReceiver(t, ReceiverConfig{}, Config{})
	deeper := `{"kind":"EventList","items":[{"verb":"get","requestObject":{"x":` + strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001) + `}}]}`
	if st, rb := post(t, client(t, pki2, ""), srv2.URL, testToken, deeper); st != 400 || !strings.Contains(rb, "nested") {
		t.Errorf("deep nesting: %d %s", st, rb)
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET: %v %v", resp, err)
	}
	req, _ = http.NewRequest("POST", srv.URL, strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "text/plain")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 415 {
		t.Errorf("text/plain: %v %v", resp, err)
	}
	if len(sink.all()) != 0 {
		t.Errorf("a refused batch raised alerts: %v", sink.rules())
	}
	if rcv.Stats().Rejected < 8 {
		t.Errorf("rejected counter %d", rcv.Stats().Rejected)
	}
}

// Accepted means stored: a failing store is a 503 and the API server's
// retry stores the batch; a replayed batch stores nothing twice and is not
// evaluated again.
func TestReceiverRetryAndReplay(t *testing.T) {
	srv, _, proc, sink, pki := newTestReceiver(t, ReceiverConfig{}, Config{})
	c := client(t, pki, "")
	body := eventList(privilegedPod("r1", "default", "p1"), privilegedPod("r2", "default", "p2"))
	sink.mu.Lock()
	sink.fail = 1
	sink.mu.Unlock()
	if st, rb := post(t, c, srv.URL, testToken, body); st != 503 {
		t.Fatalf("store down: %d %s, want 503", st, rb)
	}
	if n := len(sink.all()); n != 0 {
		t.Fatalf("%d alerts stored by a failed call", n)
	}
	if st, rb := post(t, c, srv.URL, testToken, body); st != 200 {
		t.Fatalf("retry: %d %s", st, rb)
	}
	if got := sink.rules()["Privileged container created"]; got != 2 {
		t.Fatalf("after retry: %d privileged alerts, want 2 (%v)", got, sink.rules())
	}
	if st, _ := post(t, c, srv.URL, testToken, body); st != 200 {
		t.Fatalf("replay: %d", st)
	}
	if got := sink.rules()["Privileged container created"]; got != 2 {
		t.Errorf("after replay: %d privileged alerts, want 2", got)
	}
	if s := proc.Stats(); s.Replays != 2 || s.Events != 4 {
		t.Errorf("stats %+v: want 2 replays skipped, 4 events evaluated (2 in the failed call, 2 in the retry)", s)
	}
}

// A full queue answers 429 at once (the API server backs off and retries)
// instead of buffering without bound.
func TestReceiverQueueFull(t *testing.T) {
	sink := newMemSink()
	proc, _ := NewProcessor(Config{}, sink)
	rcv, err := NewReceiver(ReceiverConfig{Clients: []Client{{Cluster: "c", Token: testToken}}, QueueSize: 1, Wait: 500 * time.Millisecond}, proc)
	if err != nil {
		t.Fatal(err)
	}
	// No Run: nothing drains the queue.
	h := func() int {
		req := httptest.NewRequest("POST", "/", strings.NewReader(eventList(privilegedPod("q", "d", "p"))))
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, req)
		return w.Code
	}
	first := make(chan int)
	go func() { first <- h() }()
	waitFor(t, 5*time.Second, "the first batch to be queued", func() bool { return len(rcv.jobs) == 1 })
	if st := h(); st != 429 {
		t.Errorf("second batch: %d, want 429", st)
	}
	if st := <-first; st != 503 {
		t.Errorf("first batch, never processed: %d, want 503", st)
	}
	if rcv.Stats().Busy != 1 {
		t.Errorf("busy counter %d", rcv.Stats().Busy)
	}
}

func TestNewReceiverChecksClients(t *testing.T) {
	proc, _ := NewProcessor(Config{}, newMemSink())
	for _, cs := range [][]Client{nil, {{Cluster: "a"}}, {{Cluster: "a", CN: "x", Token: testToken}}, {{Cluster: "a", Token: "short"}}} {
		if _, err := NewReceiver(ReceiverConfig{Clients: cs}, proc); err == nil {
			t.Errorf("clients %+v accepted", cs)
		}
	}
}

// FuzzReceiveEventList: any body gets 200, 400 or 413 — never a panic or a
// 5xx — and only a 200 can raise alerts.
func FuzzReceiveEventList(f *testing.F) {
	f.Add(eventList(privilegedPod("f1", "default", "p")))
	f.Add(eventList(auditRecord("f2", "create", "pods", "exec", "default", "web", "alice", "192.0.2.1", "")))
	f.Add(`{"kind":"EventList","items":[{"requestObject":[[[[[[]]]]]]}]}`)
	f.Add(`{"items":null}`)
	f.Add(`{"kind":"EventList","items":[{"verb":"\ud800"}]}`)
	sink := newMemSink()
	proc, _ := NewProcessor(Config{}, sink)
	rcv, _ := NewReceiver(ReceiverConfig{Clients: []Client{{Cluster: "c", Token: testToken}}, MaxBodyBytes: 1 << 20}, proc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rcv.Run(ctx)
	f.Fuzz(func(t *testing.T, body string) {
		before := len(sink.all())
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, req)
		switch w.Code {
		case 200:
		case 400, 413:
			if len(sink.all()) != before {
				t.Fatalf("refused body raised alerts")
			}
			var e map[string]string
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e["error"] == "" {
				t.Fatalf("error answer without message: %s", w.Body)
			}
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}

func BenchmarkReceiver(b *testing.B) {
	sink := newMemSink()
	proc, _ := NewProcessor(Config{DedupWindow: time.Nanosecond}, sink)
	rcv, _ := NewReceiver(ReceiverConfig{Clients: []Client{{Cluster: "c", Token: testToken}}}, proc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rcv.Run(ctx)
	items := make([]string, 400)
	for i := range items {
		items[i] = auditRecord(fmt.Sprintf("b%d", i), "get", "configmaps", "", "kube-system", "cm", "system:kube-controller-manager", "10.0.0.1", "")
	}
	body := eventList(items...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "events/s")
}
