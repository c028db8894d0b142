package console

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/store"
)

// TestPosturePage lists stored posture reports with their scores and the
// change since the previous report of the same cluster; names are outside
// data and are escaped.
func TestPosturePage(t *testing.T) {
	w, st := openWorld(t)
	ctx := context.Background()
	evil := `<script>alert(1)</script>`
	summary := json.RawMessage(`{"frameworks":[{"name":"All controls","score":70},{"name":"CIS Kubernetes Benchmark","score":61.5,"failed":12}]}`)
	for _, r := range []store.PostureReport{
		{Target: "cluster", Name: "prod " + evil, Score: 62.5, Objects: 120, Passed: 300, Failed: 40},
		{Target: "node", Name: "cp-1", Score: 40, Objects: 19, Passed: 20, Failed: 30},
		{Target: "cluster", Name: "prod " + evil, Score: 70, Objects: 121, Passed: 320, Failed: 20},
	} {
		r.Catalogue, r.Summary, r.Report = "2026.1", summary, json.RawMessage(`{}`)
		if _, err := st.SavePostureReport(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewTLSServer(newTestConsole(t, st, w.now))
	t.Cleanup(srv.Close)
	c := newClient(t, srv)
	if resp, _ := c.get("/posture"); resp.StatusCode != 303 && resp.StatusCode != 200 {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
	c.login(analystUser, analystPass)
	resp, body := c.get("/posture")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /posture: %d\n%.1500s", resp.StatusCode, body)
	}
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)") {
		t.Error("name not escaped, or not shown")
	}
	for _, want := range []string{"70.0", "+7.5", "CIS Kubernetes Benchmark: 61.5", "cp-1", `aria-current="page">Posture`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	_, body = c.get("/posture?target=node")
	if strings.Contains(body, "prod ") || !strings.Contains(body, "cp-1") {
		t.Error("target filter not applied")
	}
	if resp, _ := c.get("/posture?target=laptop"); resp.StatusCode != 400 {
		t.Errorf("bad target: %d", resp.StatusCode)
	}
}
