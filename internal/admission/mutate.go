package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bulwark-security/bulwark/internal/policy"
)

// The mutating webhook (PathMutate). Policies whose configuration rule
// lists controls under mutate have those controls fixed here — the API
// server calls mutating webhooks before validating ones — so the
// validating webhook then judges the fixed object (policy.Set.Mutate). It
// never denies: a review it cannot fix (no policies, an error, a timeout)
// is allowed unchanged, and the validating webhook still judges the
// object. The answer is a JSON Patch replacing the object's spec and
// adding the annotation bulwark.dev/fixed (the controls fixed), and a
// warning kubectl shows.

// PathMutate is the mutating webhook's path.
const PathMutate = "/mutate"

// AnnotationFixed lists the controls the mutating webhook fixed.
const AnnotationFixed = "bulwark.dev/fixed"

func (s *Server) mutate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if !s.reviewPost(w, r) {
		return
	}
	body, err := readBody(r.Body, s.cfg.MaxBodyBytes, nil)
	if err != nil {
		s.badRequest(w, "body", err)
		return
	}
	rev, req, err := DecodeReview(body)
	if err != nil {
		s.badRequest(w, "decode", err)
		return
	}
	out := &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: types.UID(req.UID), Allowed: true},
	}
	outcome := "unchanged"
	if set := s.deps.Policies.Current(); set != nil && set.Mutates() {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.EvalTimeout)
		defer cancel()
		if s.deps.Namespaces != nil && req.Namespace != "" {
			if ns, err := s.deps.Namespaces.Namespace(ctx, req.Namespace); err == nil {
				req.NamespaceObject = ns
			}
		}
		m, err := set.Mutate(ctx, req, rev.Request.Object.Raw)
		var patch []byte
		if err == nil && m.Object != nil {
			patch, err = fixPatch(rev.Request.Object.Raw, m)
		}
		switch {
		case err != nil:
			outcome = "error"
			s.log.Warn("admission fix failed: allowed unchanged, judged by the validating webhook", "what", describe(req), "err", err)
		case patch != nil:
			outcome = "patched"
			pt := admissionv1.PatchTypeJSONPatch
			out.Response.Patch, out.Response.PatchType = patch, &pt
			controls := fixedControls(m)
			out.Response.Warnings = []string{fmt.Sprintf("Bulwark fixed %s: %s (policies %s)", describe(req),
				strings.Join(controls, ", "), strings.Join(fixPolicies(m), ", "))}
			for _, c := range controls {
				s.m.fixes.WithLabelValues(c).Inc()
			}
			s.log.Info("admission fix", "what", describe(req), "user", req.User.Username, "controls", controls)
		}
	}
	s.m.mutations.WithLabelValues(outcome).Inc()
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
	s.m.reviewLatency("MUTATE").Observe(time.Since(start).Seconds())
}

func fixedControls(m policy.Mutation) []string {
	var out []string
	for _, f := range m.Fixes {
		out = append(out, f.Control)
	}
	return out
}

func fixPolicies(m policy.Mutation) []string {
	var out []string
	for _, f := range m.Fixes {
		if !slices.Contains(out, f.Policy) {
			out = append(out, f.Policy)
		}
	}
	return out
}

// fixPatch is the JSON Patch from the original object to the fixed one:
// the spec replaced (the fixes touch nothing else) and the annotation
// added.
func fixPatch(orig []byte, m policy.Mutation) ([]byte, error) {
	var before, after struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(orig, &before); err != nil {
		return nil, fmt.Errorf("fix patch: %w", err)
	}
	if err := json.Unmarshal(m.Object, &after); err != nil {
		return nil, fmt.Errorf("fix patch: %w", err)
	}
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	ops := []op{{Op: "replace", Path: "/spec", Value: after.Spec}}
	val := strings.Join(fixedControls(m), ",")
	if before.Metadata.Annotations == nil {
		ops = append(ops, op{Op: "add", Path: "/metadata/annotations", Value: map[string]string{AnnotationFixed: val}})
	} else {
		ops = append(ops, op{Op: "add", Path: "/metadata/annotations/" + strings.ReplaceAll(AnnotationFixed, "/", "~1"), Value: val})
	}
	return json.Marshal(ops)
}
