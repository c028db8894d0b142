package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/store"
)

// TestOpenAPIMatchesRoutes keeps openapi.json true: every route of the
// table is documented with its roles, and nothing else is.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	s := &Server{}
	type entry struct{ Op, Roles string }
	var fromTable, fromDoc []entry
	for _, rt := range s.routeTable() {
		var roles []string
		for _, r := range rt.roles {
			roles = append(roles, string(r))
		}
		fromTable = append(fromTable, entry{rt.method + " " + rt.path, strings.Join(roles, ",")})
	}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op struct {
				Roles []string `json:"x-bulwark-roles"`
				ID    string   `json:"operationId"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if op.ID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
			fromDoc = append(fromDoc, entry{strings.ToUpper(method) + " " + path, strings.Join(op.Roles, ",")})
		}
	}
	less := func(a, b entry) int { return strings.Compare(a.Op, b.Op) }
	slices.SortFunc(fromTable, less)
	slices.SortFunc(fromDoc, less)
	if d := cmp.Diff(fromTable, fromDoc); d != "" {
		t.Errorf("route table (-) and openapi.json (+) differ:\n%s", d)
	}
	// Every $ref resolves.
	var all map[string]any
	_ = json.Unmarshal(openAPIDocument, &all)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
				var cur any = all
				for _, p := range parts {
					m, _ := cur.(map[string]any)
					cur = m[p]
				}
				if cur == nil {
					t.Errorf("unresolved $ref %s", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(all)
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("get image x: %w", store.ErrNotFound), 404, "not_found"},
		{fmt.Errorf("create: %w: bad kind", store.ErrInvalid), 400, "invalid"},
		{fmt.Errorf("create registry a: %w (dup)", store.ErrConflict), 409, "conflict"},
		{fmt.Errorf("verify token: %w", store.ErrUnauthorized), 401, "unauthorized"},
		{errForbidden, 403, "forbidden"},
		{&http.MaxBytesError{Limit: 10}, 413, "too_large"},
		{fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), 413, "too_large"},
		{badRequest("x"), 400, "invalid"},
		{context.Canceled, 503, "unavailable"},
		{errors.New("disk on fire"), 500, "internal"},
	}
	for _, tc := range tests {
		status, code, msg := errorStatus(tc.err)
		if status != tc.status || code != tc.code {
			t.Errorf("errorStatus(%v) = %d %s, want %d %s", tc.err, status, code, tc.status, tc.code)
		}
		if status == 500 && strings.Contains(msg, "disk") {
			t.Errorf("a 500 leaks the internal error: %q", msg)
		}
	}
}

// TestRoles calls every token-authenticated route with no token, a bad
// token and a token of each role: 401, 401, then 403 exactly for the
// roles the table leaves out. Every allowed mutating call leaves one audit
// entry naming the token.
func TestRoles(t *testing.T) {
	e := startEnv(t, backends[0].DSN(t), Config{Workers: -1, DBDir: importDB(t, advisoryFiles(t))})
	tokens := map[store.Role]string{}
	for _, r := range allRoleNames {
		tokens[r] = e.token(r)
	}
	fill := strings.NewReplacer("{digest}", "sha256:"+strings.Repeat("ab", 32), "{id}", "999999", "{username}", "nobody", "{name}", "nobody")
	ctx := context.Background()
	auditCount := func() int {
		_, n, err := e.st.ListAudit(ctx, store.AuditFilter{}, store.Page{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, rt := range e.srv.routes {
		if rt.auth != authToken {
			continue
		}
		path := fill.Replace(rt.path)
		var body any
		if rt.method != "GET" && rt.method != "DELETE" {
			body = []byte("{}")
		}
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			if st, b := e.do(rt.method, path, "", body); st != 401 || errorCode(b) != "unauthorized" {
				t.Errorf("no token: %d %s", st, b)
			}
			if st, _ := e.do(rt.method, path, "bwk_notarealtokennotarealtokennotarealtoken0", body); st != 401 {
				t.Errorf("unknown token: %d", st)
			}
			for _, role := range allRoleNames {
				before := auditCount()
				st, b := e.do(rt.method, path, tokens[role], body)
				allowed := slices.Contains(rt.roles, role)
				switch {
				case !allowed && (st != 403 || errorCode(b) != "forbidden"):
					t.Errorf("role %s: got %d %s, want 403 forbidden", role, st, b)
				case allowed && (st == 401 || st == 403):
					t.Errorf("role %s: got %d %s, want it allowed", role, st, b)
				}
				after := auditCount()
				if want := before + btoi(allowed && rt.action != ""); after != want {
					t.Errorf("role %s: audit entries %d → %d, want %d", role, before, after, want)
				}
				if allowed && rt.action != "" {
					es, _, _ := e.st.ListAudit(ctx, store.AuditFilter{Action: rt.action}, store.Page{Limit: 1})
					if len(es) == 0 || !strings.HasPrefix(es[0].Actor, "token:test-"+string(role)) {
						t.Errorf("role %s: audit entry %+v", role, es)
					}
				}
			}
		})
	}
	// Public routes answer without a token; unknown API paths are JSON 404s.
	for _, p := range []string{"/healthz", "/readyz", "/api/v1/openapi.json"} {
		if st, b := e.do("GET", p, "", nil); st != 200 {
			t.Errorf("GET %s = %d %s", p, st, b)
		}
	}
	if st, b := e.do("GET", "/api/v1/nope", e.admin, nil); st != 404 || errorCode(b) != "not_found" {
		t.Errorf("unknown API path: %d %s", st, b)
	}
	if st, _ := e.do("POST", "/api/v1/images", e.admin, []byte("{}")); st != 405 && st != 404 {
		t.Errorf("wrong method: %d", st)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRouteTableSane checks the table's own invariants: unique patterns,
// roles only on token routes, an action on every mutating token route.
func TestRouteTableSane(t *testing.T) {
	s := &Server{}
	seen := map[string]bool{}
	var names []string
	for _, rt := range s.routeTable() {
		k := rt.method + " " + rt.path
		if seen[k] {
			t.Errorf("duplicate route %s", k)
		}
		seen[k] = true
		names = append(names, k)
		if (rt.auth == authToken) != (len(rt.roles) > 0) {
			t.Errorf("%s: roles %v with auth %d", k, rt.roles, rt.auth)
		}
		if rt.auth == authToken && rt.method != "GET" && rt.action == "" {
			t.Errorf("%s mutates but records no audit action", k)
		}
		if rt.method == "GET" && rt.action != "" {
			t.Errorf("%s is a read with an audit action", k)
		}
	}
	sort.Strings(names)
	if len(names) < 30 {
		t.Errorf("only %d routes", len(names))
	}
}
