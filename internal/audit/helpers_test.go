package audit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// memSink keeps alerts by id, as central's idempotent ingest does. It is a
// stand-in for store.IngestAlerts in unit tests (the server test uses the
// real store); fail makes the next calls fail, as a store that is down.
type memSink struct {
	mu     sync.Mutex
	byID   map[string]alerts.Alert
	order  []string
	calls  int
	fail   int
	dups   int
	notify chan struct{}
}

func newMemSink() *memSink {
	return &memSink{byID: map[string]alerts.Alert{}, notify: make(chan struct{}, 1)}
}

func (s *memSink) IngestAlerts(_ context.Context, as []alerts.Alert) (int, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail > 0 {
		s.fail--
		return 0, 0, errors.New("store unavailable")
	}
	acc, dup := 0, 0
	for _, a := range as {
		if err := a.Validate(); err != nil {
			return 0, 0, err
		}
		if _, ok := s.byID[a.ID]; ok {
			dup++
			continue
		}
		s.byID[a.ID] = a
		s.order = append(s.order, a.ID)
		acc++
	}
	s.dups += dup
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return acc, dup, nil
}

func (s *memSink) rules() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, a := range s.byID {
		out[a.Rule]++
	}
	return out
}

func (s *memSink) all() []alerts.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []alerts.Alert
	for _, id := range s.order {
		out = append(out, s.byID[id])
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testPKI is a CA with a server and client certificates, generated per test.
type testPKI struct {
	caPEM     []byte
	ca        *x509.Certificate
	caKey     *ecdsa.PrivateKey
	server    tls.Certificate
	serverPEM []byte
	serial    int64
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bulwark test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), serial: 1}
	certPEM, keyPEM := p.issue(t, "bulwark-audit", x509.ExtKeyUsageServerAuth)
	p.serverPEM = certPEM
	p.server, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) issue(t testing.TB, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// auditRecord is one audit event line as kube-apiserver writes it.
func auditRecord(id, verb, resource, sub, ns, name, user, ip string, extra string) string {
	s := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":%q,"stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/%s/%s/%s","verb":%q,"user":{"username":%q,"groups":["system:authenticated"]},`+
		`"sourceIPs":[%q],"userAgent":"kubectl/v1.30.0 (linux/amd64)","objectRef":{"resource":%q,"subresource":%q,"namespace":%q,"name":%q,"apiVersion":"v1"},`+
		`"responseStatus":{"metadata":{},"code":201},"requestReceivedTimestamp":"2026-11-27T10:00:00.000000Z","stageTimestamp":"2026-11-27T10:00:00.001000Z"%s}`,
		id, ns, resource, name, verb, user, ip, resource, sub, ns, name, extra)
	return s
}

func privilegedPod(id, ns, name string) string {
	return auditRecord(id, "create", "pods", "", ns, name, "alice", "192.0.2.10",
		`,"requestObject":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"`+name+`"},"spec":{"containers":[{"name":"c","image":"busybox:1.36","securityContext":{"privileged":true}}]}}`)
}

func eventList(items ...string) string {
	return `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + strings.Join(items, ",") + `]}`
}
