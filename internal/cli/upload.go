package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-security/bulwark/internal/scan"
)

// uploadFlags send a scan result to central.
type uploadFlags struct {
	server   string
	token    string
	serverCA string
}

func addUploadFlags(cmd *cobra.Command, f *uploadFlags) {
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "upload the result to this Bulwark central (https://host:8443) after the scan")
	fl.StringVar(&f.token, "token", "", "API token for --server, role ci (env BULWARK_TOKEN)")
	fl.StringVar(&f.serverCA, "server-ca", "", "PEM file with the CA (or self-signed certificate) that signed --server's certificate")
}

// uploadIfAsked posts res to central's POST /api/v1/scans when --server
// is set. The server's certificate is always verified (against the system
// roots, or --server-ca); plain http:// is allowed only to a loopback
// address.
func (a *app) uploadIfAsked(ctx context.Context, f *uploadFlags, res *scan.Result) error {
	if f.server == "" {
		return nil
	}
	if f.token == "" {
		return fmt.Errorf("--server needs --token (or BULWARK_TOKEN)")
	}
	out, err := uploadResult(ctx, f.server, f.token, f.serverCA, res)
	if err != nil {
		return fmt.Errorf("upload to %s: %w", f.server, err)
	}
	fmt.Fprintf(a.env.Stderr, "bulwark: uploaded to %s: scan %d of %s (%d findings, %d new, %d fixed)\n",
		f.server, out.ScanID, out.ImageDigest, out.FindingCount, out.NewFindings, out.FixedFindings)
	return nil
}

// uploadResponse is the part of central's answer the CLI reports.
type uploadResponse struct {
	ScanID        int64  `json:"scanId"`
	ImageDigest   string `json:"imageDigest"`
	FindingCount  int    `json:"findingCount"`
	NewFindings   int    `json:"newFindings"`
	FixedFindings int    `json:"fixedFindings"`
}

func uploadResult(ctx context.Context, server, token, caFile string, res *scan.Result) (*uploadResponse, error) {
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("--server must be an https:// URL")
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("refusing to send a token over plain HTTP to %s (use https)", u.Host)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--server-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--server-ca %s: no PEM certificate found", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	body, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String()+"/api/v1/scans", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Minute,
		// A redirect could carry the token elsewhere: never follow one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s: %s (%s)", resp.Status, e.Error.Message, e.Error.Code)
		}
		return nil, fmt.Errorf("%s", resp.Status)
	}
	var out uploadResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return &out, nil
}
