package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/fsutil"
)

// Generated certificate files, under DataDir.
const (
	selfSignedCert = "tls/self-signed.crt"
	selfSignedKey  = "tls/self-signed.key"
)

// loadCertificate returns the configured certificate, or the self-signed
// one from the data directory, generated on first start. A generated
// certificate is reused while it is valid for another 30 days and names
// this host, so clients that pinned its fingerprint keep working across
// restarts.
func (s *Server) loadCertificate() (tls.Certificate, error) {
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		if s.cfg.TLSCert == "" || s.cfg.TLSKey == "" {
			return tls.Certificate{}, errors.New("--tls-cert and --tls-key go together")
		}
		c, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load TLS certificate: %w", err)
		}
		return c, nil
	}
	if s.cfg.DataDir == "" {
		return tls.Certificate{}, errors.New("no TLS certificate given and no data directory to keep a generated one in")
	}
	certPath := filepath.Join(s.cfg.DataDir, selfSignedCert)
	keyPath := filepath.Join(s.cfg.DataDir, selfSignedKey)
	names := certNames(s.hostname())
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf, perr := x509.ParseCertificate(c.Certificate[0])
		if perr == nil && time.Until(leaf.NotAfter) > 30*24*time.Hour && coversNames(leaf, names) {
			s.log.Info("using the generated self-signed certificate", "path", certPath)
			return c, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("generated certificate unreadable; making a new one", "path", certPath, "err", err)
	}
	certPEM, keyPEM, err := generateSelfSigned(names, time.Now())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("save self-signed certificate: %w", err)
	}
	if err := fsutil.WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("save self-signed key: %w", err)
	}
	if err := fsutil.WriteFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("save self-signed certificate: %w", err)
	}
	s.log.Info("generated a self-signed certificate", "path", certPath, "names", strings.Join(names, ","))
	return tls.X509KeyPair(certPEM, keyPEM)
}

// certNames are the names a generated certificate carries.
func certNames(host string) []string {
	n := []string{"localhost", "127.0.0.1", "::1"}
	if host != "" && !slices.Contains(n, host) {
		n = append(n, host)
	}
	return n
}

func coversNames(c *x509.Certificate, names []string) bool {
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// generateSelfSigned makes an ECDSA P-256 certificate valid for a year
// for names (DNS names and IP addresses).
func generateSelfSigned(names []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bulwark server (self-signed)", Organization: []string{"Bulwark"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		// A CA for itself, so clients can trust it with --server-ca.
		IsCA: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// fingerprint is the SHA-256 of a DER certificate as colon-separated hex,
// as browsers and openssl show it.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}
