package admission

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bulwark-security/bulwark/internal/policy"
)

// encodeStd is what the webhook wrote before appendResponse.
func encodeStd(t testing.TB, out *admissionv1.AdmissionReview) []byte {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(out); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func reviewOut(uid string, allowed bool, msg string, code int32, warns []string) *admissionv1.AdmissionReview {
	out := &admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: types.UID(uid), Allowed: allowed, Warnings: warns}}
	if !allowed {
		out.Response.Result = &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: metav1.StatusReasonForbidden, Message: msg}
	}
	return out
}

func TestAppendResponseMatchesEncodingJSON(t *testing.T) {
	patch := admissionv1.PatchTypeJSONPatch
	cases := map[string]*admissionv1.AdmissionReview{
		"allow":         reviewOut("705ab4f5-6393-11e8-b7cc-42010a800002", true, "", 0, nil),
		"allow empty":   reviewOut("", true, "", 0, nil),
		"deny":          reviewOut("u1", false, "Bulwark denied Deployment prod/web (policy p03): 1 violation(s)\n- [p03/provenance BW-K8S-0018] container \"app\" image x: untrusted — fix: use registry.example.com", 403, nil),
		"deny no code":  reviewOut("u1", false, "m", 0, nil),
		"html and ctl":  reviewOut("<u>&\"\\", false, "a<b>&c\b\f\n\r\t\x00\x01\x1f\x7f é 日本 \u2028\u2029 \U0001F600", 403, []string{"w<1>", "w&2\n"}),
		"invalid utf8":  reviewOut("\xff", false, "bad \xc3\x28 \xe2\x82 \xf0\x9f\x98 end\xff", 403, []string{"\x80"}),
		"warnings":      reviewOut("u2", true, "", 0, []string{"[p02/configuration BW-K8S-0003] container \"app\": run as non-root", "image x admitted without a vulnerability verdict (fail-open)"}),
		"empty warning": reviewOut("u3", true, "", 0, []string{""}),
		"no typemeta":   {Response: &admissionv1.AdmissionResponse{UID: "x", Allowed: true}},
		// Shapes the webhook never builds go through encoding/json.
		"patch":       {Response: &admissionv1.AdmissionResponse{UID: "x", Allowed: true, Patch: []byte(`[]`), PatchType: &patch}},
		"details":     {Response: &admissionv1.AdmissionResponse{UID: "x", Result: &metav1.Status{Details: &metav1.StatusDetails{Name: "n"}}}},
		"annotations": {Response: &admissionv1.AdmissionResponse{UID: "x", AuditAnnotations: map[string]string{"a": "b"}}},
		"list meta":   {Response: &admissionv1.AdmissionResponse{UID: "x", Result: &metav1.Status{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}}},
		"no response": {TypeMeta: metav1.TypeMeta{Kind: "AdmissionReview"}},
	}
	for name, out := range cases {
		t.Run(name, func(t *testing.T) {
			got := appendResponse([]byte("prefix"), out)
			want := append([]byte("prefix"), encodeStd(t, out)...)
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("appendResponse differs from encoding/json (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResponseBodyOfRealDecisions encodes the decisions the benchmark's
// policies make (allowed, denied with a message) both ways.
func TestResponseBodyOfRealDecisions(t *testing.T) {
	srv, _ := benchServer(t, "127.0.0.1:0", nil)
	for _, reg := range []string{"registry.example.com", "untrusted.example.com"} {
		_, req, err := DecodeReview(benchDeploymentFrom("uid-"+reg, reg))
		if err != nil {
			t.Fatal(err)
		}
		req.Images = srv.deps.Images
		d := srv.deps.Policies.Current().Evaluate(t.Context(), req)
		d.Notes = append(d.Notes, "a note <with> & \"quotes\"") // warnings too
		out := response(req, &d)
		if got, want := appendResponse(nil, out), encodeStd(t, out); !bytes.Equal(got, want) {
			t.Errorf("%s: got\n%s\nwant\n%s", reg, got, want)
		}
		if d.Verdict == policy.VerdictAllow && reg != "registry.example.com" {
			t.Errorf("%s: verdict %s", reg, d.Verdict)
		}
	}
}

func FuzzAppendResponse(f *testing.F) {
	f.Add("uid", false, "msg <&> \n\"\\", int32(403), "warn", "\u2028")
	f.Add("", true, "", int32(0), "", "")
	f.Add("\xff\xfe", false, "\xc3\x28\x00\x1f\x7f", int32(-1), "日本", "\U0001F600\xe2\x82")
	f.Fuzz(func(t *testing.T, uid string, allowed bool, msg string, code int32, w1, w2 string) {
		var warns []string
		if w1 != "" || w2 != "" {
			warns = []string{w1, w2}
		}
		out := reviewOut(uid, allowed, msg, code, warns)
		got := appendResponse(nil, out)
		if want := encodeStd(t, out); !bytes.Equal(got, want) {
			t.Fatalf("got\n%q\nwant\n%q", got, want)
		}
	})
}

// TestAnswerHasContentLength: answers, small and large, carry a
// Content-Length (no chunked encoding), so headers and body go out
// together.
func TestAnswerHasContentLength(t *testing.T) {
	srv, _ := benchServer(t, "127.0.0.1:0", nil)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	for _, reg := range []string{"registry.example.com", "untrusted.example.com"} {
		resp, err := ts.Client().Post(ts.URL+PathValidate, "application/json", bytes.NewReader(benchDeploymentFrom("u", reg)))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.TransferEncoding != nil || resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: status %d, transfer encoding %v, content length %d for %d bytes", reg, resp.StatusCode, resp.TransferEncoding, resp.ContentLength, len(body))
		}
		if reg != "registry.example.com" && len(body) <= 2048 {
			t.Errorf("the denial is %d bytes: want one over net/http's 2 KB buffer to test", len(body))
		}
	}
}
