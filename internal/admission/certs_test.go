package admission

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestGeneratedCertificates(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cfg := CertConfig{Dir: dir, DNSNames: []string{"bulwark-admission.bulwark.svc"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: 90 * 24 * time.Hour}
	c, err := NewCerts(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.cur.Load().Leaf
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.CABundle()) {
		t.Fatal("no CA bundle")
	}
	for _, name := range []string{"bulwark-admission.bulwark.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v %v", fi.Mode(), err)
	}
	// A restart reuses both (the CA bundle in the webhook configuration
	// stays valid).
	c2, err := NewCerts(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(c2.CABundle()) != string(c.CABundle()) || !c2.cur.Load().Leaf.Equal(leaf) {
		t.Error("restart regenerated the certificates")
	}
	// When two thirds of the validity have passed, the serving certificate
	// is renewed under the same CA, and served without a restart.
	c2.now = func() time.Time { return time.Now().Add(61 * 24 * time.Hour) }
	if err := c2.refresh(); err != nil {
		t.Fatal(err)
	}
	renewed := c2.cur.Load().Leaf
	if renewed.Equal(leaf) || renewed.NotAfter.Before(leaf.NotAfter) {
		t.Fatal("not renewed")
	}
	if _, err := renewed.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1", CurrentTime: time.Now().Add(62 * 24 * time.Hour)}); err != nil {
		t.Errorf("renewed certificate under the old CA bundle: %v", err)
	}
	got, err := c2.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || !got.Leaf.Equal(renewed) {
		t.Error("TLS config does not serve the renewed certificate")
	}
	// A name added to the configuration forces a new certificate.
	cfg.DNSNames = append(cfg.DNSNames, "other.example")
	c3, err := NewCerts(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.cur.Load().Leaf.VerifyHostname("other.example"); err != nil {
		t.Error(err)
	}
}

func TestSuppliedCertificatesReload(t *testing.T) {
	// Supplied files are what cert-manager writes: generate two pairs with
	// the generator into separate dirs and swap them in.
	log := slog.New(slog.DiscardHandler)
	a, err := NewCerts(CertConfig{Dir: t.TempDir(), DNSNames: []string{"a.example"}}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCerts(CertConfig{Dir: t.TempDir(), DNSNames: []string{"b.example"}}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyPair := func(c *Certs, mtime time.Time) {
		for src, dst := range map[string]string{filepath.Join(c.cfg.Dir, CertFile): crt, filepath.Join(c.cfg.Dir, KeyFile): key} {
			bs, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, bs, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(dst, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
	copyPair(a, time.Now().Add(-time.Hour))
	s, err := NewCerts(CertConfig{CertFile: crt, KeyFile: key}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.cur.Load().Leaf.VerifyHostname("a.example") != nil {
		t.Fatal("first pair not served")
	}
	copyPair(b, time.Now())
	if err := s.refresh(); err != nil {
		t.Fatal(err)
	}
	if s.cur.Load().Leaf.VerifyHostname("b.example") != nil {
		t.Fatal("rotated pair not served")
	}
	// A broken file keeps the previous certificate.
	if err := os.WriteFile(crt, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.refresh(); err == nil {
		t.Fatal("garbage certificate loaded")
	}
	if s.cur.Load().Leaf.VerifyHostname("b.example") != nil {
		t.Fatal("a broken file replaced the served certificate")
	}
	if _, err := NewCerts(CertConfig{CertFile: crt}, log, nil); err == nil {
		t.Error("cert without key accepted")
	}
}
