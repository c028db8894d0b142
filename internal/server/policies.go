package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/store"
)

// Admission policies (issue 4): named YAML documents that `bulwark
// admission serve --policy-from-server` polls and loads together with its
// local files. A document is validated with the webhook's own loader
// before it is stored, so a bad one is refused here (with its line) rather
// than discovered by every webhook.

var rolesPolicyRead = []store.Role{store.RoleAdmin, store.RoleAnalyst, store.RoleAgent}

type admissionPolicyJSON struct {
	Name      string    `json:"name"`
	YAML      string    `json:"yaml"`
	Version   int64     `json:"version"`
	UpdatedAt time.Time `json:"updatedAt"`
	UpdatedBy string    `json:"updatedBy"`
}

// admissionPoliciesJSON is the body of GET /api/v1/admission/policies.
type admissionPoliciesJSON struct {
	ETag  string                `json:"etag"`
	Items []admissionPolicyJSON `json:"items"`
}

func policyETag(gen int64) string { return `"` + strconv.FormatInt(gen, 10) + `"` }

func (s *Server) listAdmissionPolicies(c *call) error {
	ps, gen, err := s.st.ListAdmissionPolicies(c.r.Context())
	if err != nil {
		return err
	}
	etag := policyETag(gen)
	c.w.Header().Set("ETag", etag)
	c.w.Header().Set("Cache-Control", "no-cache")
	if etagMatches(c.r.Header.Get("If-None-Match"), etag) {
		c.w.WriteHeader(http.StatusNotModified)
		c.status = http.StatusNotModified
		return nil
	}
	out := admissionPoliciesJSON{ETag: etag, Items: make([]admissionPolicyJSON, 0, len(ps))}
	for _, p := range ps {
		out.Items = append(out.Items, admissionPolicyJSON{Name: p.Name, YAML: p.YAML, Version: p.Version, UpdatedAt: p.UpdatedAt, UpdatedBy: p.UpdatedBy})
	}
	return c.JSON(http.StatusOK, out)
}

// etagMatches reports whether an If-None-Match header names etag (a list,
// weak validators compared weakly, or "*").
func etagMatches(header, etag string) bool {
	for v := range strings.SplitSeq(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}

// validPolicyName keeps names printable and path-safe: they appear in
// URLs, logs and error messages.
func validPolicyName(n string) bool {
	if n == "" || len(n) > store.MaxAdmissionPolicyName {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (s *Server) putAdmissionPolicy(c *call) error {
	name := c.r.PathValue("name")
	c.audit("admission/policy/"+name, nil)
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, policy.MaxFileBytes))
	if err != nil {
		return err
	}
	p, n, err := s.putPolicy(c.r.Context(), name, body, c.actor())
	if errors.Is(err, policy.ErrInvalid) {
		return badRequest("%v", err)
	}
	if err != nil {
		return err
	}
	c.audit("admission/policy/"+name, map[string]any{"version": p.Version, "bytes": len(body), "policies": n})
	return c.JSON(http.StatusOK, admissionPolicyJSON{Name: p.Name, YAML: p.YAML, Version: p.Version, UpdatedAt: p.UpdatedAt, UpdatedBy: p.UpdatedBy})
}

// PutAdmissionPolicy validates the document as the webhooks will load it
// (with the other stored documents) and stores it; an invalid one is an
// error wrapping policy.ErrInvalid that names the line at fault. It
// returns the stored document and how many policies it holds. The console
// saves policies through it.
func (s *Server) PutAdmissionPolicy(ctx context.Context, name, yaml, by string) (*store.AdmissionPolicy, int, error) {
	return s.putPolicy(ctx, name, []byte(yaml), by)
}

func (s *Server) putPolicy(ctx context.Context, name string, body []byte, by string) (*store.AdmissionPolicy, int, error) {
	if !validPolicyName(name) {
		return nil, 0, fmt.Errorf("%w: policy name must be 1-%d letters, digits, '-', '_' or '.'", policy.ErrInvalid, store.MaxAdmissionPolicyName)
	}
	if len(body) > policy.MaxFileBytes {
		return nil, 0, fmt.Errorf("%w: policy document larger than %d bytes", policy.ErrInvalid, policy.MaxFileBytes)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, 0, fmt.Errorf("%w: empty policy document", policy.ErrInvalid)
	}
	ps, _, err := s.st.ListAdmissionPolicies(ctx)
	if err != nil {
		return nil, 0, err
	}
	stored := make(map[string]string, len(ps))
	for _, p := range ps {
		stored[p.Name] = p.YAML
	}
	env, err := celeval.NewEnv()
	if err != nil {
		return nil, 0, fmt.Errorf("policy validation: %w", err)
	}
	l, err := policy.NewLoader(env, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("policy validation: %w", err)
	}
	set, err := l.LoadCentral(ctx, stored, name, body)
	if err != nil {
		if errors.Is(err, policy.ErrInvalid) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("policy validation: %w", err)
	}
	p, err := s.st.PutAdmissionPolicy(ctx, name, string(body), by)
	if err != nil {
		return nil, 0, err
	}
	return p, len(set.Policies()), nil
}

func (s *Server) deleteAdmissionPolicy(c *call) error {
	name := c.r.PathValue("name")
	c.audit("admission/policy/"+name, nil)
	if err := s.st.DeleteAdmissionPolicy(c.r.Context(), name); err != nil {
		return err
	}
	return c.noContent()
}
