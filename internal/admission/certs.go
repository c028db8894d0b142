package admission

import (
	"bytes"
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
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-security/bulwark/internal/fsutil"
)

// Generated certificate files in CertConfig.Dir.
const (
	CAFile   = "ca.crt"
	caKey    = "ca.key"
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// CertConfig says where the serving certificate comes from.
type CertConfig struct {
	// CertFile and KeyFile are supplied PEM files (cert-manager, a
	// Secret): watched and reloaded when they change.
	CertFile, KeyFile string
	// Dir holds the generated CA and serving certificate when no files
	// are supplied (created if missing; reused across restarts).
	Dir string
	// DNSNames and IPs of the serving certificate (e.g.
	// bulwark-admission.bulwark.svc, 127.0.0.1).
	DNSNames []string
	IPs      []net.IP
	// Validity of a generated serving certificate (default 90 days); it is
	// renewed when a third of it is left. The CA lives 10 years.
	Validity time.Duration
	// CheckInterval is how often files are checked for change and the
	// generated certificate for renewal (default 1m).
	CheckInterval time.Duration
}

// Certs serves the current certificate to the TLS stack and replaces it on
// rotation without a restart.
type Certs struct {
	cfg   CertConfig
	log   *slog.Logger
	now   func() time.Time
	cur   atomic.Pointer[tls.Certificate]
	mu    sync.Mutex
	stamp string
	caPEM []byte
	m     *Metrics
}

// NewCerts loads or generates the certificate.
func NewCerts(cfg CertConfig, log *slog.Logger, m *Metrics) (*Certs, error) {
	if cfg.Validity <= 0 {
		cfg.Validity = 90 * 24 * time.Hour
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("certificates: --tls-cert and --tls-key go together")
	}
	if cfg.CertFile == "" && cfg.Dir == "" {
		return nil, errors.New("certificates: set --tls-cert/--tls-key or a directory for generated ones")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Certs{cfg: cfg, log: log, now: time.Now, m: m}
	if err := c.refresh(); err != nil {
		return nil, err
	}
	return c, nil
}

// CABundle is the PEM of the CA that signed the serving certificate (the
// generated CA, or the chain's last certificate of supplied files): what
// the ValidatingWebhookConfiguration's caBundle must hold.
func (c *Certs) CABundle() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.caPEM)
}

// TLSConfig serves the current certificate (TLS 1.2 or later).
func (c *Certs) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return c.cur.Load(), nil
	}}
}

// Run checks for changed files and due renewals until ctx ends.
func (c *Certs) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := c.refresh(); err != nil {
				c.log.Error("certificate refresh failed; serving the previous one", "err", err)
			}
		}
	}
}

func (c *Certs) refresh() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.CertFile != "" {
		return c.loadSupplied()
	}
	return c.loadOrGenerate()
}

func fileStamp(paths ...string) string {
	s := ""
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
		}
	}
	return s
}

func (c *Certs) loadSupplied() error {
	stamp := fileStamp(c.cfg.CertFile, c.cfg.KeyFile)
	if stamp == c.stamp && c.cur.Load() != nil {
		return nil
	}
	pair, err := tls.LoadX509KeyPair(c.cfg.CertFile, c.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s: %w", c.cfg.CertFile, err)
	}
	chain, _ := os.ReadFile(c.cfg.CertFile)
	c.caPEM = lastPEM(chain)
	c.install(&pair)
	if c.stamp != "" {
		c.log.Info("serving certificate reloaded", "file", c.cfg.CertFile)
	}
	c.stamp = stamp
	return nil
}

// lastPEM is the last certificate of a chain (the issuer, when the file
// carries one; the certificate itself otherwise).
func lastPEM(chain []byte) []byte {
	var last []byte
	for rest := chain; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			last = pem.EncodeToMemory(b)
		}
	}
	return last
}

func (c *Certs) install(pair *tls.Certificate) {
	if pair.Leaf == nil && len(pair.Certificate) > 0 {
		pair.Leaf, _ = x509.ParseCertificate(pair.Certificate[0])
	}
	c.cur.Store(pair)
	if c.m != nil && pair.Leaf != nil {
		c.m.certExpiry.Set(float64(pair.Leaf.NotAfter.Unix()))
	}
}

func (c *Certs) loadOrGenerate() error {
	dir := c.cfg.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certificate dir %s: %w", dir, err)
	}
	caCert, caPriv, err := c.loadCA()
	if err != nil {
		return err
	}
	now := c.now()
	if cur := c.cur.Load(); cur != nil && cur.Leaf != nil && cur.Leaf.NotAfter.Sub(now) > c.cfg.Validity/3 &&
		fileStamp(filepath.Join(dir, CertFile)) == c.stamp {
		return nil
	}
	// A serving certificate on disk that is still good (another replica,
	// a restart) is reused.
	if pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)); err == nil {
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err == nil && leaf.NotAfter.Sub(now) > c.cfg.Validity/3 && leaf.CheckSignatureFrom(caCert) == nil && c.namesCovered(leaf) {
			pair.Leaf = leaf
			c.install(&pair)
			c.stamp = fileStamp(filepath.Join(dir, CertFile))
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "bulwark-admission"},
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(c.cfg.Validity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: c.cfg.DNSNames, IPAddresses: c.cfg.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caPriv)
	if err != nil {
		return fmt.Errorf("sign serving certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode serving key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, CertFile), certPEM, 0o644); err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	c.install(&pair)
	c.stamp = fileStamp(filepath.Join(dir, CertFile))
	c.log.Info("serving certificate generated", "not_after", tmpl.NotAfter, "dns", c.cfg.DNSNames, "ips", c.cfg.IPs)
	return nil
}

func (c *Certs) namesCovered(leaf *x509.Certificate) bool {
	for _, n := range c.cfg.DNSNames {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	for _, ip := range c.cfg.IPs {
		if leaf.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

func (c *Certs) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := filepath.Join(c.cfg.Dir, CAFile), filepath.Join(c.cfg.Dir, caKey)
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if priv, ok := pair.PrivateKey.(*ecdsa.PrivateKey); ok && err == nil && c.now().Before(cert.NotAfter.Add(-30*24*time.Hour)) {
			c.caPEM, _ = os.ReadFile(certPath)
			return cert, priv, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "bulwark-admission-ca"},
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := fsutil.WriteFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, nil, err
	}
	c.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := fsutil.WriteFileAtomic(certPath, c.caPEM, 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA: %w", err)
	}
	// A new CA invalidates any serving certificate on disk.
	os.Remove(filepath.Join(c.cfg.Dir, CertFile))
	c.cur.Store(nil)
	return cert, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
