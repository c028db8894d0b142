package admission

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
		dst = appendJSONString(dst, out.Kind)
		dst = append(dst, ',')
	}
	if out.APIVersion != "" {
		dst = append(dst, `"apiVersion":`...)
		dst = appendJSONString(dst, out.APIVersion)
		dst = append(dst, ',')
	}
	dst = append(dst, `"response":`...)
	dst = append(dst, `{"uid":`...)
	dst = appendJSONString(dst, string(r.UID))
	dst = append(dst, `,"allowed":`...)
	dst = strconv.AppendBool(dst, r.Allowed)
	if s := r.Result; s != nil {
		dst = append(dst, `,"status":{"metadata":{}`...)
		if s.Status != "" {
			dst = append(dst, `,"status":`...)
			dst = appendJSONString(dst, s.Status)
		}
		if s.Message != "" {
			dst = append(dst, `,"message":`...)
			dst = appendJSONString(dst, s.Message)
		}
		if s.Reason != "" {
			dst = append(dst, `,"reason":`...)
			dst = appendJSONString(dst, string(s.Reason))
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
			dst = appendJSONString(dst, w)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}', '}', '\n')
}

// plainStatus says whether s holds only the fields appendResponse writes.
func plainStatus(s *metav1.Status) bool {
	return s.TypeMeta == (metav1.TypeMeta{}) && s.ListMeta == (metav1.ListMeta{}) && s.Details == nil
}

// appendJSONString appends s as encoding/json writes a string with its
// default HTML escaping: <, > and & as \u003c..., U+2028 and U+2029
// escaped, invalid UTF-8 as \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
