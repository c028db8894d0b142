package respond_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/respond"
)

// The servers here are stand-ins for central that answer what the real one
// never does (garbage, huge bodies, redirects), to check the agent's client
// fails cleanly. The real API is exercised by internal/cli's
// TestRespondAgainstCentral.

func serve(t testing.TB, h http.HandlerFunc) *respond.Client {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &respond.Client{BaseURL: srv.URL, Token: "tok", HTTP: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func TestClientHostileResponses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		header  map[string]string
		wantErr string
	}{
		{name: "not json", status: 200, body: "<html>", wantErr: "decode response"},
		{name: "wrong shape", status: 200, body: `{"actions":{"id":1}}`, wantErr: "decode response"},
		{name: "huge", status: 200, body: `{"actions":[` + strings.Repeat(" ", 9<<20) + `]}`, wantErr: "larger than"},
		{name: "error body", status: 403, body: `{"error":{"code":"forbidden","message":"role agent required"}}`, wantErr: "role agent required (forbidden)"},
		{name: "plain error", status: 502, body: "bad gateway", wantErr: "502"},
		{name: "redirect", status: 302, header: map[string]string{"Location": "https://elsewhere.example/"}, wantErr: "302"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			_, err := c.Pending(ctx, "prod")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestClientRequests(t *testing.T) {
	var got []string
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization"))
		switch {
		case r.Method == "GET":
			_, _ = w.Write([]byte(`{"actions":[{"id":7,"action":"cordon_node","cluster":"prod","node":"n1","state":"pending"}],"total":1}`))
		case strings.HasSuffix(r.URL.Path, "/8/result"):
			http.Error(w, `{"error":{"code":"conflict","message":"x"}}`, http.StatusConflict)
		default:
			_, _ = w.Write([]byte(`{}`))
		}
	})
	ctx := context.Background()
	list, err := c.Pending(ctx, "prod eu")
	if err != nil || len(list) != 1 || list[0].ID != 7 || list[0].Action != alerts.ActionCordonNode {
		t.Fatalf("Pending = %+v, %v", list, err)
	}
	if err := c.Report(ctx, 7, alerts.ActionResult{State: alerts.ActionDone}); err != nil {
		t.Fatal(err)
	}
	if err := c.Report(ctx, 8, alerts.ActionResult{State: alerts.ActionDone}); !errors.Is(err, respond.ErrConflict) {
		t.Errorf("409: err = %v, want ErrConflict", err)
	}
	want := []string{
		"GET /api/v1/actions?cluster=prod+eu&limit=100&state=pending Bearer tok",
		"POST /api/v1/actions/7/result Bearer tok",
		"POST /api/v1/actions/8/result Bearer tok",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzClientPending feeds arbitrary response bodies to the agent's client:
// it must return actions or an error, never panic.
func FuzzClientPending(f *testing.F) {
	f.Add([]byte(`{"actions":[{"id":1,"action":"delete_pod","cluster":"c","namespace":"n","pod":"p","state":"pending"}]}`))
	f.Add([]byte(`{"actions":null}`))
	f.Add([]byte(`{"actions":[{"id":"x"}]}`))
	f.Add([]byte(`[]`))
	var body []byte
	c := serve(f, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
	f.Fuzz(func(t *testing.T, b []byte) {
		body = b
		list, err := c.Pending(context.Background(), "c")
		if err == nil {
			for _, a := range list {
				_ = a.Action.Valid()
			}
		}
	})
}
