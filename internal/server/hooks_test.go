package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/store"
)

const (
	distSecret   = "distribution-hook-secret-0123456789"
	harborSecret = "harbor-hook-secret-0123456789abcd"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scanJobs(t testing.TB, st *store.Store) int {
	t.Helper()
	_, n, err := st.ListJobs(context.Background(), store.JobFilter{Kind: jobScan}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHooks sends real notification payloads, then hostile ones:
// malformed, huge, unauthenticated, replayed. Only the genuine first
// deliveries create jobs; every other body gets a clear 4xx.
func TestHooks(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			e := startEnv(t, b.DSN(t), Config{Workers: -1, MaxHookBytes: 64 << 10})
			createRegistry(t, e.st, "dist", "https://registry.example.com", "distribution", distSecret)
			hb := createRegistry(t, e.st, "harbor", "https://harbor.example.com", "harbor", harborSecret)
			_ = hb
			r, err := e.st.CreateRegistry(context.Background(), store.Registry{Name: "only-team", URL: "https://other.example.com",
				Kind: store.RegistryDistribution, Repositories: []string{"team/*"}, Credentials: &store.Credentials{WebhookSecret: "only-team-secret-0123456789"}})
			if err != nil {
				t.Fatal(err)
			}
			_ = r
			dist := readTestdata(t, "distribution-push.json")
			harbor := readTestdata(t, "harbor-push-artifact.json")
			post := func(path string, body []byte, hdr ...string) (int, []byte) {
				t.Helper()
				return e.do("POST", path, "", body, hdr...)
			}
			auth := func(s string) []string { return []string{"Authorization", "Bearer " + s} }

			// The real registry's notification: accepted, one job.
			st, body := post("/api/v1/hooks/distribution", dist, append(auth(distSecret), "Content-Type", "application/vnd.docker.distribution.events.v2+json")...)
			var hr hookResponse
			_ = json.Unmarshal(body, &hr)
			if st != 202 || hr.Accepted != 1 || len(hr.Jobs) != 1 {
				t.Fatalf("real distribution push: %d %s", st, body)
			}
			j, err := e.st.GetJob(context.Background(), hr.Jobs[0])
			if err != nil || j.Key != "sha256:f83097818b0e57a9f5073a0bf4238a6cac8108fb717ce1078ac3e6e6e1f42545" {
				t.Fatalf("job: %+v %v", j, err)
			}
			// Harbor, authenticated with a bare Authorization header.
			st, body = post("/api/v1/hooks/harbor", harbor, "Authorization", harborSecret)
			if st != 202 || !strings.Contains(string(body), `"accepted":1`) {
				t.Fatalf("harbor push: %d %s", st, body)
			}
			jobs := scanJobs(t, e.st)
			if jobs != 1 {
				t.Fatalf("%d scan jobs, want 1 (the same digest pushed to two registries shares a pending job)", jobs)
			}

			huge := bytes.Repeat([]byte(" "), 100<<10)
			many := map[string]any{"events": func() []any {
				var evs []any
				for i := range 101 {
					evs = append(evs, distributionPush(fmt.Sprint("m", i), "team/app", "1", "sha256:"+strings.Repeat("a", 64))["events"].([]any)[0])
				}
				return evs
			}()}
			manyJSON, _ := json.Marshal(many)
			bad := func(repo, tag, digest string) []byte {
				b, _ := json.Marshal(distributionPush("bad-"+repo+tag+digest, repo, tag, digest))
				return b
			}
			pull, _ := json.Marshal(map[string]any{"events": []any{map[string]any{"id": "pull-1", "action": "pull",
				"target": map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + strings.Repeat("b", 64), "repository": "team/app"}}}})
			blob, _ := json.Marshal(map[string]any{"events": []any{map[string]any{"id": "blob-1", "action": "push",
				"target": map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "sha256:" + strings.Repeat("c", 64), "repository": "team/app"}}}})
			otherRepo, _ := json.Marshal(distributionPush("elsewhere-1", "other/app", "1", "sha256:"+strings.Repeat("d", 64)))
			tests := []struct {
				name   string
				path   string
				body   []byte
				hdr    []string
				status int
				code   string
			}{
				{"replayed distribution", "/api/v1/hooks/distribution", dist, auth(distSecret), 409, "replayed"},
				{"replayed harbor", "/api/v1/hooks/harbor", harbor, auth(harborSecret), 409, "replayed"},
				{"no secret", "/api/v1/hooks/distribution", bad("team/x", "1", "sha256:"+strings.Repeat("e", 64)), nil, 401, "unauthorized"},
				{"wrong secret", "/api/v1/hooks/distribution", bad("team/x", "1", "sha256:"+strings.Repeat("e", 64)), auth("wrong-secret-0123456789"), 401, "unauthorized"},
				{"harbor secret on distribution", "/api/v1/hooks/distribution", bad("team/x", "1", "sha256:"+strings.Repeat("e", 64)), auth(harborSecret), 401, "unauthorized"},
				{"secret of another registry by name", "/api/v1/hooks/distribution?registry=only-team", bad("team/x", "1", "sha256:"+strings.Repeat("e", 64)), auth(distSecret), 401, "unauthorized"},
				{"API token instead of secret", "/api/v1/hooks/distribution", bad("team/x", "1", "sha256:"+strings.Repeat("e", 64)), auth(e.admin), 401, "unauthorized"},
				{"not JSON", "/api/v1/hooks/distribution", []byte("{"), auth(distSecret), 400, "invalid"},
				{"array", "/api/v1/hooks/distribution", []byte("[]"), auth(distSecret), 400, "invalid"},
				{"no events", "/api/v1/hooks/distribution", []byte("{}"), auth(distSecret), 400, "invalid"},
				{"events not an array", "/api/v1/hooks/distribution", []byte(`{"events":"x"}`), auth(distSecret), 400, "invalid"},
				{"trailing data", "/api/v1/hooks/distribution", append(append([]byte{}, dist...), []byte(" {}")...), auth(distSecret), 400, "invalid"},
				{"event without id", "/api/v1/hooks/distribution", []byte(`{"events":[{"action":"push"}]}`), auth(distSecret), 400, "invalid"},
				{"101 events", "/api/v1/hooks/distribution", manyJSON, auth(distSecret), 400, "invalid"},
				{"huge", "/api/v1/hooks/distribution", append(append([]byte(`{"events":[]`), huge...), '}'), auth(distSecret), 413, "too_large"},
				{"bad digest", "/api/v1/hooks/distribution", bad("team/app", "1", "sha256:../../etc/passwd"), auth(distSecret), 400, "invalid"},
				{"path in repository", "/api/v1/hooks/distribution", bad("team/../../x", "1", "sha256:"+strings.Repeat("e", 64)), auth(distSecret), 400, "invalid"},
				{"bad tag", "/api/v1/hooks/distribution", bad("team/app", "-x\n", "sha256:"+strings.Repeat("e", 64)), auth(distSecret), 400, "invalid"},
				{"wrong content type", "/api/v1/hooks/distribution", dist, append(auth(distSecret), "Content-Type", "text/plain"), 415, "unsupported_media_type"},
				{"harbor malformed", "/api/v1/hooks/harbor", []byte(`{"type":"PUSH_ARTIFACT"}`), auth(harborSecret), 400, "invalid"},
				{"harbor bad digest", "/api/v1/hooks/harbor", bytes.Replace(harbor, []byte("sha256:f8"), []byte("sha256:zz"), 1), auth(harborSecret), 400, "invalid"},
				{"harbor huge", "/api/v1/hooks/harbor", append(append([]byte{}, huge...), harbor...), auth(harborSecret), 413, "too_large"},
				{"harbor no auth", "/api/v1/hooks/harbor", bytes.Replace(harbor, []byte("1680100000"), []byte("1680100001"), 1), nil, 401, "unauthorized"},
				// Acknowledged, nothing to do (a 4xx would make the registry retry forever).
				{"pull event", "/api/v1/hooks/distribution", pull, auth(distSecret), 202, ""},
				{"blob push", "/api/v1/hooks/distribution", blob, auth(distSecret), 202, ""},
				{"repository not configured", "/api/v1/hooks/distribution?registry=only-team", otherRepo, auth("only-team-secret-0123456789"), 202, ""},
				{"harbor delete", "/api/v1/hooks/harbor", bytes.Replace(harbor, []byte("PUSH_ARTIFACT"), []byte("DELETE_ARTIFACT"), 1), auth(harborSecret), 202, ""},
			}
			for _, tc := range tests {
				st, body := post(tc.path, tc.body, tc.hdr...)
				if st != tc.status || errorCode(body) != tc.code {
					t.Errorf("%s: %d %s, want %d %s", tc.name, st, truncate(string(body), 200), tc.status, tc.code)
				}
				if n := scanJobs(t, e.st); n != jobs {
					t.Fatalf("%s created a job (%d → %d)", tc.name, jobs, n)
				}
			}
			// A chunked body without Content-Length is bounded too.
			req, _ := http.NewRequest("POST", e.url+"/api/v1/hooks/distribution", io.MultiReader(strings.NewReader(`{"events":[`), bytes.NewReader(huge)))
			req.Header.Set("Authorization", "Bearer "+distSecret)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 413 {
				t.Errorf("chunked huge body: %d", resp.StatusCode)
			}
			// A fresh event for a new digest still gets in.
			fresh, _ := json.Marshal(distributionPush("fresh-1", "team/app", "2.0", "sha256:"+strings.Repeat("f", 64)))
			if st, body := post("/api/v1/hooks/distribution", fresh, auth(distSecret)...); st != 202 {
				t.Errorf("fresh push: %d %s", st, body)
			}
			if n := scanJobs(t, e.st); n != jobs+1 {
				t.Errorf("%d jobs after a fresh push, want %d", n, jobs+1)
			}
			// The metrics counted them.
			_, m := e.do("GET", "/metrics", e.admin, nil)
			for _, want := range []string{`bulwark_hook_events_total{outcome="accepted",source="distribution"} 2`,
				`bulwark_hook_events_total{outcome="replayed",source="distribution"} 1`, `bulwark_queue_jobs{state="pending"} 2`} {
				if !strings.Contains(string(m), want) {
					t.Errorf("metrics lack %s", want)
				}
			}
		})
	}
}

// FuzzHookDistribution feeds arbitrary bodies to the notification
// parsers (distribution and Harbor): never a panic; either a 4xx error or
// events whose jobs are keyed by a valid digest, with bounded ids.
func FuzzHookDistribution(f *testing.F) {
	f.Add(readTestdata(f, "distribution-push.json"))
	f.Add(readTestdata(f, "harbor-push-artifact.json"))
	f.Add([]byte(`{"events":[{"id":"x","action":"push","target":{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:` +
		strings.Repeat("0", 64) + `","repository":"a/b","tag":"t"}}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Add([]byte(`{"events":[{"id":"` + strings.Repeat("x", 300) + `"}]}`))
	s := &Server{cfg: Config{JobMaxAttempts: 5}}
	reg := &store.Registry{ID: 1, Name: "r", Repositories: []string{"a/*", "team/demo"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func(*store.Registry, io.Reader) ([]store.HookEvent, int, error){s.distributionEvents, s.harborEvents} {
			events, ignored, err := parse(reg, bytes.NewReader(body))
			if err != nil {
				if status, _, _ := errorStatus(err); status < 400 || status >= 500 {
					t.Fatalf("error %v maps to %d", err, status)
				}
				if events != nil || ignored != 0 {
					t.Fatalf("error with events")
				}
				continue
			}
			for _, e := range events {
				if e.EventID == "" || len(e.EventID) > 256 || len(e.Jobs) == 0 || len(e.Jobs) > maxEventsPerEnvelope {
					t.Fatalf("bad event %+v", e)
				}
				for _, j := range e.Jobs {
					if !digestPattern.MatchString(j.Key) || j.Kind != jobScan || !json.Valid(j.Payload) {
						t.Fatalf("bad job %+v", j)
					}
				}
			}
		}
	})
}
