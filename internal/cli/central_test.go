package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// centralClient refuses what would leak the token (plain HTTP off loopback,
// redirects) and names the command's own CA flag in its errors.
func TestCentralClient(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		server, caFlag, caFile, wantErr, wantBase string
	}{
		{"https://central.example:8443/", "--server-ca", "", "", "https://central.example:8443"},
		{"http://127.0.0.1:8080", "--server-ca", "", "", "http://127.0.0.1:8080"},
		{"http://[::1]:8080", "--server-ca", "", "", "http://[::1]:8080"},
		{"http://localhost:8080", "--ca", "", "", "http://localhost:8080"},
		{"http://central.example:8080", "--server-ca", "", "refusing to send a token over plain HTTP to central.example:8080", ""},
		{"ftp://central.example", "--server-ca", "", "--server must be an https:// URL", ""},
		{"central.example:8443", "--server-ca", "", "--server must be an https:// URL", ""},
		{"https://central.example", "--ca", filepath.Join(dir, "missing.pem"), "--ca: ", ""},
		{"https://central.example", "--server-ca", notPEM, "--server-ca " + notPEM + ": no PEM certificate found", ""},
	} {
		c, base, err := centralClient(tc.server, tc.caFlag, tc.caFile, time.Minute)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: err %v, want %q", tc.server, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.server, err)
		case tc.wantErr == "" && (base != tc.wantBase || c.Timeout != time.Minute):
			t.Errorf("%s: base %q timeout %v, want %q and 1m", tc.server, base, c.Timeout, tc.wantBase)
		}
	}

	// A redirect is answered as is, never followed.
	followed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed = true
			return
		}
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c, base, err := centralClient(srv.URL, "--server-ca", "", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(base + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || followed {
		t.Errorf("status %d, followed %v: want the 307 itself", resp.StatusCode, followed)
	}
}
