package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// centralClient is the one HTTP client every command uses to talk to
// central. The server's certificate is always verified (against the system
// roots, or the PEM bundle in caFile); plain http:// is allowed only to a
// loopback address, since every request carries a token; redirects are never
// followed (one could carry the token, or a re-sent body, elsewhere).
//
// caFlag is the name of the command's CA flag (--server-ca, or --ca for the
// sensor) so that errors name the flag the user actually gave. It returns the
// client and server's base URL without a trailing slash.
func centralClient(server, caFlag, caFile string, timeout time.Duration) (*http.Client, string, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, "", errors.New("--server must be an https:// URL")
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, "", fmt.Errorf("refusing to send a token over plain HTTP to %s (use https)", u.Host)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", caFlag, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("%s %s: no PEM certificate found", caFlag, caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, u.String(), nil
}

// postToCentral posts body as JSON to central's path (with the transport
// rules of centralClient, --server-ca as the CA flag) and decodes a 201
// answer into out. Any other status becomes an error carrying central's
// error message when it sent one.
func postToCentral(ctx context.Context, server, token, caFile, path string, body, out any) error {
	client, base, err := centralClient(server, "--server-ca", caFile, 5*time.Minute)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s: %s (%s)", resp.Status, e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	return nil
}
