package admission

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/store"
)

// webhook is a running webhook over real TLS with its generated CA.
type webhook struct {
	URL    string
	Client *http.Client
	Certs  *Certs
	Images *Images
	Rec    *Recorder
	srv    *Server
	cancel context.CancelFunc
	done   chan struct{}
}

func startWebhook(t testing.TB, cfg Config, pol PolicySource, c *central, failOpen bool) *webhook {
	t.Helper()
	return startWebhookWith(t, cfg, pol, c, failOpen, nil)
}

// startWebhookWith is startWebhook with more dependencies set by deps.
func startWebhookWith(t testing.TB, cfg Config, pol PolicySource, c *central, failOpen bool, deps func(*Deps)) *webhook {
	t.Helper()
	m := NewMetrics(nil)
	certs, err := NewCerts(CertConfig{Dir: t.TempDir(), IPs: []net.IP{net.ParseIP("127.0.0.1")}}, slog.New(slog.DiscardHandler), m)
	if err != nil {
		t.Fatal(err)
	}
	cc := CentralConfig{}
	if c != nil {
		cc.InsecureRegistries = []string{strings.TrimPrefix(c.Registry.URL, "http://")}
	}
	rc := RecorderConfig{FlushInterval: 50 * time.Millisecond}
	if c != nil {
		cc.URL, cc.Token, cc.TLS = c.URL, c.Agent, c.TLS
		rc.URL, rc.Token, rc.TLS = c.URL, c.Agent, c.TLS
	}
	images := NewImages(cc, m)
	rec := NewRecorder(rc, slog.New(slog.DiscardHandler), m)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.FailOpen = failOpen
	d := Deps{Policies: pol, Images: images, Recorder: rec, Certs: certs, Metrics: m}
	if deps != nil {
		deps(&d)
	}
	srv, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs.CABundle())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}
	w := &webhook{URL: "https://" + srv.Addr().String(), Client: &http.Client{Transport: tr, Timeout: 30 * time.Second},
		Certs: certs, Images: images, Rec: rec, srv: srv, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go rec.Run(ctx)
	go func() { _ = srv.Run(ctx); close(w.done) }()
	t.Cleanup(w.Stop)
	return w
}

func (w *webhook) Stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
	}
}

// send posts a review and returns the HTTP status and the decoded answer.
func (w *webhook) send(t testing.TB, body []byte) (int, *admissionv1.AdmissionResponse, string) {
	t.Helper()
	resp, err := w.Client.Post(w.URL+PathValidate, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil, string(b)
	}
	var rev admissionv1.AdmissionReview
	if err := json.Unmarshal(b, &rev); err != nil {
		t.Fatalf("answer is not an AdmissionReview: %v\n%s", err, b)
	}
	if rev.APIVersion != "admission.k8s.io/v1" || rev.Kind != "AdmissionReview" || rev.Response == nil {
		t.Fatalf("answer: %s", b)
	}
	return 200, rev.Response, string(b)
}

// pushClean pushes a random image (no packages: a clean scan), scans it for
// real and uploads the result, and returns its reference.
func (c *central) pushClean(t testing.TB) string {
	t.Helper()
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	refStr := strings.TrimPrefix(c.Registry.URL, "http://") + "/shop/clean:2.0"
	ref, _ := name.ParseReference(refStr, name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	s := &scan.Scanner{Extractors: list.All(), Version: "test"}
	res, err := s.Image(context.Background(), refStr, image.Options{Insecure: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res.FinishedAt = time.Now().UTC()
	ci, _, err := c.Store.CreateToken(context.Background(), "ci2", store.RoleCI, time.Time{}, "test")
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
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload clean scan: %s", resp.Status)
	}
	return refStr
}

const testPolicies = `apiVersion: bulwark.dev/v1alpha1
kind: PolicyList
items:
  - apiVersion: bulwark.dev/v1alpha1
    kind: Policy
    metadata: {name: prod-vulns}
    spec:
      mode: deny
      scope: {namespaces: ["prod"]}
      vulnerabilities: {knownExploited: true, maxSeverity: high, unscanned: deny}
  - apiVersion: bulwark.dev/v1alpha1
    kind: Policy
    metadata: {name: audit-vulns}
    spec:
      mode: audit
      scope: {namespaces: ["audit"]}
      vulnerabilities: {knownExploited: true}
  - apiVersion: bulwark.dev/v1alpha1
    kind: Policy
    metadata: {name: warn-latest}
    spec:
      mode: warn
      scope: {namespaces: ["warn"]}
      provenance: {noLatest: true}
  - apiVersion: bulwark.dev/v1alpha1
    kind: Policy
    metadata: {name: no-exec}
    spec:
      mode: deny
      scope: {namespaces: ["prod"]}
      connect: {deny: [exec]}
`

func TestWebhookWithCentral(t *testing.T) {
	c := startCentral(t)
	kev := c.kevFinding(t)
	clean := c.pushClean(t)
	w := startWebhook(t, Config{Cluster: "test"}, loadPolicies(t, testPolicies), c, false)

	// A vulnerable image, by tag (resolved to the digest through the
	// registry): denied with rule, container, finding and fix.
	st, resp, raw := w.send(t, review("u1", "CREATE", "Pod", "prod", "web", podObj("web", c.Ref)))
	if st != 200 || resp.Allowed || resp.UID != "u1" || resp.Result == nil || resp.Result.Code != 403 {
		t.Fatalf("vulnerable pod: %d %s", st, raw)
	}
	msg := resp.Result.Message
	for _, want := range []string{"Pod prod/web", "prod-vulns/vulnerabilities", `container "c0"`, c.Ref, kev.Vulnerability.ID, "known exploited", "fix:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial lacks %q:\n%s", want, msg)
		}
	}
	// The same image by digest: the same verdict (now from the cache).
	if _, resp, raw := w.send(t, review("u2", "CREATE", "Pod", "prod", "web2", podObj("web2", c.Repo+"@"+c.Digest))); resp == nil || resp.Allowed {
		t.Fatalf("by digest: %s", raw)
	}
	// A clean image is admitted.
	if _, resp, raw := w.send(t, review("u3", "CREATE", "Pod", "prod", "ok", podObj("ok", clean))); resp == nil || !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("clean pod: %s", raw)
	}
	// Audit mode admits and records.
	if _, resp, raw := w.send(t, review("u4", "CREATE", "Pod", "audit", "web", podObj("web", c.Ref))); resp == nil || !resp.Allowed || len(resp.Warnings) != 0 {
		t.Fatalf("audit: %s", raw)
	}
	// Warn mode admits with warnings.
	if _, resp, raw := w.send(t, review("u5", "CREATE", "Pod", "warn", "web", podObj("web", "nginx"))); resp == nil || !resp.Allowed ||
		len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "latest") {
		t.Fatalf("warn: %s", raw)
	}
	// exec denied in prod.
	if _, resp, raw := w.send(t, review("u6", "CONNECT", "PodExecOptions", "prod", "web", map[string]any{"kind": "PodExecOptions", "command": []string{"sh"}})); resp != nil {
		t.Fatalf("exec review decoded with subresource missing: %s", raw)
	}
	execBody := bytes.Replace(review("u7", "CONNECT", "PodExecOptions", "prod", "web", map[string]any{"kind": "PodExecOptions"}),
		[]byte(`"operation":"CONNECT"`), []byte(`"operation":"CONNECT","subResource":"exec"`), 1)
	if _, resp, raw := w.send(t, execBody); resp == nil || resp.Allowed || !strings.Contains(resp.Result.Message, "exec into pod prod/web by alice") {
		t.Fatalf("exec: %s", raw)
	}

	// Decisions reach central: the denial, the audit record, the warning.
	waitFor(t, 10*time.Second, func() bool {
		ds, _, err := c.Store.ListAdmissionDecisions(context.Background(), store.AdmissionFilter{}, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, d := range ds {
			got[d.Verdict+"/"+d.Namespace]++
		}
		return got["deny/prod"] == 3 && got["audit/audit"] == 1 && got["warn/warn"] == 1
	})
	// Denials and warnings became alerts (source admission); audit did not.
	waitFor(t, 10*time.Second, func() bool {
		as, _, err := c.Store.ListAlerts(context.Background(), store.AlertFilter{Source: alerts.SourceAdmission}, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		rules := map[string]bool{}
		for _, a := range as {
			rules[a.Rule+" "+a.Namespace] = true
			if a.Namespace == "audit" {
				t.Errorf("audit-mode decision raised an alert: %+v", a)
			}
		}
		return rules["prod-vulns/vulnerabilities prod"] && rules["no-exec/connect prod"] && rules["warn-latest/provenance warn"]
	})
	ds, _, _ := c.Store.ListAdmissionDecisions(context.Background(), store.AdmissionFilter{Verdict: "audit"}, store.Page{})
	var rec policy.DecisionRecord
	if err := json.Unmarshal(ds[0].Record, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Cluster != "test" || rec.User != "alice" || len(rec.Violations) == 0 || rec.Violations[0].Finding == "" || rec.Images[0] != c.Ref {
		t.Errorf("audit record: %+v", rec)
	}

	// Central goes away. Cached verdicts are used; an image never looked at
	// is a fail-closed violation.
	c.Stop()
	if _, resp, raw := w.send(t, review("u8", "CREATE", "Pod", "prod", "web3", podObj("web3", c.Repo+"@"+c.Digest))); resp == nil || resp.Allowed ||
		!strings.Contains(resp.Result.Message, kev.Vulnerability.ID) {
		t.Fatalf("cached verdict with central down: %s", raw)
	}
	unknown := c.Repo + "@sha256:" + strings.Repeat("ab", 32)
	if _, resp, raw := w.send(t, review("u9", "CREATE", "Pod", "prod", "x", podObj("x", unknown))); resp == nil || resp.Allowed ||
		!strings.Contains(resp.Result.Message, "could not be checked") {
		t.Fatalf("fail-closed: %s", raw)
	}
	open := startWebhook(t, Config{}, loadPolicies(t, testPolicies), c, true)
	if _, resp, raw := open.send(t, review("u10", "CREATE", "Pod", "prod", "x", podObj("x", unknown))); resp == nil || !resp.Allowed ||
		len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "fail-open") {
		t.Fatalf("fail-open: %s", raw)
	}
}

func waitFor(t testing.TB, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBadReviews(t *testing.T) {
	pol := loadPolicies(t, policyDoc("p", "  mode: deny\n  provenance: {noLatest: true}"))
	srv, err := New(Config{Listen: "127.0.0.1:0", MaxBodyBytes: 64 << 10}, Deps{Policies: pol, Images: policy.StaticImages{}})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	good := review("u", "CREATE", "Pod", "n", "p", podObj("p", "nginx:1"))
	cases := []struct {
		name, method, ctype string
		body                []byte
		status              int
		want                string
	}{
		{"good", "POST", "application/json", good, 200, `"allowed":true`},
		{"GET", "GET", "", nil, 405, "POST"},
		{"wrong content type", "POST", "text/plain", good, 400, "Content-Type"},
		{"empty", "POST", "application/json", nil, 400, "empty body"},
		{"not JSON", "POST", "application/json", []byte("<xml/>"), 400, "bad AdmissionReview"},
		{"truncated", "POST", "application/json", good[:len(good)/2], 400, "bad AdmissionReview"},
		{"trailing data", "POST", "application/json", append(append([]byte{}, good...), []byte(`{}`)...), 400, "trailing data"},
		{"unknown field", "POST", "application/json", bytes.Replace(good, []byte(`"request"`), []byte(`"bogus":1,"request"`), 1), 400, "unknown field"},
		{"v1beta1", "POST", "application/json", bytes.Replace(good, []byte("admission.k8s.io/v1"), []byte("admission.k8s.io/v1beta1"), 1), 400, "want admission.k8s.io/v1"},
		{"no request", "POST", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "no request"},
		{"no uid", "POST", "application/json", bytes.Replace(good, []byte(`"uid":"u"`), []byte(`"uid":""`), 1), 400, "uid is empty"},
		{"unknown kind", "POST", "application/json", review("u", "CREATE", "Service", "n", "s", map[string]any{"kind": "Service"}), 400, "not judged"},
		{"no object", "POST", "application/json", review("u", "CREATE", "Pod", "n", "p", nil), 400, "without an object"},
		{"object of the wrong shape", "POST", "application/json", review("u", "CREATE", "Pod", "n", "p", map[string]any{"spec": "x"}), 400, "object"},
		{"status subresource", "POST", "application/json", bytes.Replace(good, []byte(`"operation":"CREATE"`), []byte(`"operation":"CREATE","subResource":"status"`), 1), 400, "subresource"},
		{"bad operation", "POST", "application/json", bytes.Replace(good, []byte(`"operation":"CREATE"`), []byte(`"operation":"PATCH"`), 1), 400, "operation"},
		{"huge", "POST", "application/json", review("u", "CREATE", "Pod", "n", "p", podObj("p", strings.Repeat("a", 70<<10))), 400, "larger than"},
		{"deep nesting", "POST", "application/json", []byte(strings.Repeat("[", 100000)), 400, "bad AdmissionReview"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, PathValidate, bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if rr.Code != tc.status || !strings.Contains(rr.Body.String(), tc.want) {
				t.Errorf("status %d body %q, want %d containing %q", rr.Code, truncate(rr.Body.String(), 300), tc.status, tc.want)
			}
			if tc.status != 200 && strings.Contains(rr.Body.String(), `"allowed":true`) {
				t.Error("a bad body was allowed")
			}
		})
	}
}

func TestDecodeReviewErrorsWrap(t *testing.T) {
	_, _, err := DecodeReview([]byte(`{}`))
	if !errors.Is(err, ErrBadReview) {
		t.Fatalf("%v", err)
	}
}

// FuzzDecodeAdmissionReview: any body decodes to a request or fails with
// ErrBadReview; never a panic. What decodes evaluates without panicking.
func FuzzDecodeAdmissionReview(f *testing.F) {
	f.Add(review("u", "CREATE", "Pod", "n", "p", podObj("p", "nginx:1")))
	f.Add(review("u", "UPDATE", "Deployment", "n", "d", map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "a", "image": "b"}}}}}}))
	f.Add(review("u", "CREATE", "CronJob", "n", "c", map[string]any{}))
	f.Add(review("u", "DELETE", "Pod", "n", "p", nil))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CONNECT","subResource":"exec","kind":{"kind":"PodExecOptions"}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`))
	f.Add([]byte("\x00\xff"))
	pol := loadPolicies(f, policyDoc("p", "  mode: deny\n  configuration: {podSecurity: restricted, hardening: true}\n  provenance: {noLatest: true}\n  vulnerabilities: {maxSeverity: low}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, req, err := DecodeReview(body)
		if err != nil {
			if !errors.Is(err, ErrBadReview) {
				t.Fatalf("error does not wrap ErrBadReview: %v", err)
			}
			return
		}
		req.Images = policy.StaticImages{}
		d := pol.set.Evaluate(context.Background(), req)
		if req.Operation != "DELETE" && req.Operation != "CONNECT" && d.Allowed && len(req.ObjectJSON) > 0 {
			// Every container image is unscanned: if the object has one,
			// it cannot be allowed.
			if len(policy.Images(req.Object)) > 0 {
				t.Fatalf("allowed with unscanned images: %+v", d)
			}
		}
	})
}

func TestVerdictCacheBounded(t *testing.T) {
	im := NewImages(CentralConfig{CacheSize: 100}, nil)
	for i := range 1000 {
		im.Prime(fmt.Sprintf("sha256:%064x", i), &policy.ImageReport{Scanned: true})
	}
	if n := len(im.cache); n > 100 {
		t.Fatalf("cache holds %d entries, limit 100", n)
	}
	// The newest is always kept.
	if _, ok := im.cache[fmt.Sprintf("sha256:%064x", 999)]; !ok {
		t.Fatal("newest entry evicted")
	}
	// A fresh entry answers without central (no URL configured here).
	rep, err := im.ImageFindings(context.Background(), "x/y@"+fmt.Sprintf("sha256:%064x", 999))
	if err != nil || !rep.Scanned {
		t.Fatalf("cached lookup: %v", err)
	}
	// A miss without central is ErrCentralUnavailable.
	if _, err := im.ImageFindings(context.Background(), "x/y@sha256:"+strings.Repeat("f", 64)); !errors.Is(err, ErrCentralUnavailable) {
		t.Fatalf("miss: %v", err)
	}
	if _, err := im.ImageFindings(context.Background(), "x/y@sha256:short"); err == nil {
		t.Fatal("malformed digest accepted")
	}
}

func TestRecorderQueueBounded(t *testing.T) {
	m := NewMetrics(nil)
	// Nothing listens on this address: every delivery fails and is retried.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rc := NewRecorder(RecorderConfig{URL: "https://" + addr, Token: "t", QueueSize: 3, FlushInterval: 10 * time.Millisecond}, slog.New(slog.DiscardHandler), m)
	rec := policy.DecisionRecord{ID: "x", Time: time.Now(), Operation: "CREATE", Kind: "Pod", Verdict: policy.VerdictDeny}
	for range 10 {
		rc.Record(rec)
	}
	if got := counterValue(m.recordsDropped); got != 7 {
		t.Errorf("dropped %v, want 7", got)
	}
	// Plain allows are not recorded by default.
	allow := rec
	allow.Verdict = policy.VerdictAllow
	rc.Record(allow)
	if got := counterValue(m.recordsDropped); got != 7 {
		t.Errorf("an allow was queued: dropped %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rc.Run(ctx) // retries with backoff, then gives up at shutdown without hanging
	if got := counterValue(m.recordsSent.WithLabelValues("decision")); got != 0 {
		t.Errorf("sent %v to nowhere", got)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
