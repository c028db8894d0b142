package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/server"
	"github.com/bulwark-security/bulwark/internal/store"
)

type postureReport struct {
	ID         int64   `json:"id"`
	Target     string  `json:"target"`
	Name       string  `json:"name"`
	UploadedBy string  `json:"uploadedBy"`
	Score      float64 `json:"score"`
	Objects    int     `json:"objects"`
	Failed     int     `json:"failed"`
	Summary    struct {
		Frameworks []struct {
			Name  string  `json:"name"`
			Score float64 `json:"score"`
		} `json:"frameworks"`
	} `json:"summary"`
	Report json.RawMessage `json:"report"`
}

// TestPostureUpload sends real posture reports through the CLI's upload
// path (bulwark posture manifests|node --server) to a server over TLS, on
// SQLite and PostgreSQL, and reads them back.
func TestPostureUpload(t *testing.T) {
	manifests, err := filepath.Abs("../posture/testdata/manifests")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range server.Backends {
		t.Run(b.Name, func(t *testing.T) {
			e := server.StartEnv(t, b.DSN(t), server.Config{Workers: -1, MaxUploadBytes: 8 << 20})
			ci := e.Token(store.RoleCI)
			out := filepath.Join(t.TempDir(), "posture.json")
			code, stderr := runCLI(t, ci, "posture", "manifests", "--format", "json", "-o", out,
				"--server", e.URL(), "--server-ca", e.CAPath(), manifests)
			if code != 0 || !strings.Contains(stderr, "uploaded posture report") {
				t.Fatalf("upload: exit %d, %s", code, stderr)
			}
			var local struct {
				Objects    []json.RawMessage `json:"objects"`
				Frameworks []struct {
					Name  string  `json:"name"`
					Score float64 `json:"score"`
				} `json:"frameworks"`
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &local); err != nil {
				t.Fatal(err)
			}
			var list page[postureReport]
			e.Get("/api/v1/posture/reports?target=manifests", &list)
			if list.Total != 1 || list.Items[0].Objects != len(local.Objects) || list.Items[0].Failed == 0 || list.Items[0].Report != nil {
				t.Fatalf("list = %+v", list)
			}
			var allScore float64
			for _, f := range local.Frameworks {
				if f.Name == "All controls" {
					allScore = f.Score
				}
			}
			got := list.Items[0]
			if got.Score != allScore || got.Score <= 0 || got.Score >= 100 || !strings.HasPrefix(got.UploadedBy, "token:") {
				t.Errorf("score %v (report says %v), by %q", got.Score, allScore, got.UploadedBy)
			}
			var one postureReport
			e.Get("/api/v1/posture/reports/"+strconv.FormatInt(got.ID, 10), &one)
			var body struct {
				Objects []json.RawMessage `json:"objects"`
			}
			if err := json.Unmarshal(one.Report, &body); err != nil || len(body.Objects) != len(local.Objects) {
				t.Fatalf("report body: %v, %d objects", err, len(body.Objects))
			}
			if len(one.Summary.Frameworks) != len(local.Frameworks) {
				t.Errorf("summary frameworks %d, want %d", len(one.Summary.Frameworks), len(local.Frameworks))
			}

			// Roles: an analyst reads but cannot upload; an agent uploads.
			analyst := e.Token(store.RoleAnalyst)
			body2 := map[string]any{"target": "node", "name": "n1", "report": json.RawMessage(raw)}
			if st, _ := e.Do("POST", "/api/v1/posture/reports", analyst, body2); st != http.StatusForbidden {
				t.Errorf("analyst upload: %d", st)
			}
			if st, b := e.Do("POST", "/api/v1/posture/reports", e.Token(store.RoleAgent), body2); st != http.StatusCreated {
				t.Errorf("agent upload: %d %s", st, b)
			}
			// Bad input is refused with 400, never stored.
			for _, bad := range []any{
				map[string]any{"target": "laptop", "report": json.RawMessage(raw)},
				map[string]any{"target": "node", "report": map[string]any{"catalogueVersion": "x"}},
				map[string]any{"target": "node", "report": json.RawMessage(`{"catalogueVersion":"x","controls":[{"id":"a"}],"objects":[],"results":[{"control":"a","object":5,"status":"fail"}]}`)},
				map[string]any{"target": "node", "report": json.RawMessage(raw), "extra": 1},
			} {
				if st, b := e.Do("POST", "/api/v1/posture/reports", ci, bad); st != http.StatusBadRequest {
					t.Errorf("bad upload %v: %d %s", bad, st, b)
				}
			}
			e.Get("/api/v1/posture/reports", &list)
			if list.Total != 2 {
				t.Errorf("%d reports stored, want 2", list.Total)
			}
		})
	}
}
