package admission

import (
	"encoding/json"
	"strconv"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
)

// appendResponse appends the JSON of out, byte for byte what
// json.NewEncoder(w).Encode(out) writes (a test and a fuzz target check
// it), for the shape response builds: the webhook answers every review,
// and encoding/json's reflection over AdmissionReview was a cost paid with
// cold caches at every one. Any other shape is left to encoding/json.
func appendResponse(dst []byte, out *admissionv1.AdmissionReview) []byte {
	r := out.Response
	if out.Request != nil || r == nil || r.Patch != nil || r.PatchType != nil || r.AuditAnnotations != nil ||
		(r.Result != nil && !plainStatus(r.Result)) {
		b, err := json.Marshal(out)
		if err != nil { // not for these types; keep the answer well-formed
			b = []byte(`{}`)
		}
		return append(append(dst, b...), '\n')
	}
	dst = append(dst, '{')
	if out.Kind != "" {
		dst = append(dst, `"kind":`...)
		dst = alerts.AppendJSONString(dst, out.Kind)
		dst = append(dst, ',')
	}
	if out.APIVersion != "" {
		dst = append(dst, `"apiVersion":`...)
		dst = alerts.AppendJSONString(dst, out.APIVersion)
		dst = append(dst, ',')
	}
	dst = append(dst, `"response":`...)
	dst = append(dst, `{"uid":`...)
	dst = alerts.AppendJSONString(dst, string(r.UID))
	dst = append(dst, `,"allowed":`...)
	dst = strconv.AppendBool(dst, r.Allowed)
	if s := r.Result; s != nil {
		dst = append(dst, `,"status":{"metadata":{}`...)
		if s.Status != "" {
			dst = append(dst, `,"status":`...)
			dst = alerts.AppendJSONString(dst, s.Status)
		}
		if s.Message != "" {
			dst = append(dst, `,"message":`...)
			dst = alerts.AppendJSONString(dst, s.Message)
		}
		if s.Reason != "" {
			dst = append(dst, `,"reason":`...)
			dst = alerts.AppendJSONString(dst, string(s.Reason))
		}
		if s.Code != 0 {
			dst = append(dst, `,"code":`...)
			dst = strconv.AppendInt(dst, int64(s.Code), 10)
		}
		dst = append(dst, '}')
	}
	if len(r.Warnings) > 0 {
		dst = append(dst, `,"warnings":[`...)
		for i, w := range r.Warnings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = alerts.AppendJSONString(dst, w)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}', '}', '\n')
}

// plainStatus says whether s holds only the fields appendResponse writes.
func plainStatus(s *metav1.Status) bool {
	return s.TypeMeta == (metav1.TypeMeta{}) && s.ListMeta == (metav1.ListMeta{}) && s.Details == nil
}
