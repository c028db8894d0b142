package admission

import (
	"bytes"
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	admissionv1 "k8s.io/api/admission/v1"
	sigsjson "sigs.k8s.io/json"
)

// apiServerDecodes decodes body as the API server's own strict decoder
// does (sigs.k8s.io/json, unknown and duplicate fields refused): the
// reference decodeReview's envelope decoding must agree with.
func apiServerDecodes(body []byte, into *admissionv1.AdmissionRequest) (*admissionv1.AdmissionReview, bool) {
	rev := admissionv1.AdmissionReview{Request: into}
	strict, err := sigsjson.UnmarshalStrict(body, &rev, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	return &rev, err == nil && len(strict) == 0
}

// checkEnvelopeLikeAPIServer fails when the webhook's envelope decoding
// takes what the API server's strict decoder refuses, or the reverse, or
// decodes a different review; and when its fast path (go-json-experiment)
// takes anything the API server's decoder does not take alike (what the
// fast path refuses goes to the API server's decoder).
func checkEnvelopeLikeAPIServer(t *testing.T, body []byte) {
	t.Helper()
	for _, sc := range []*reviewScratch{nil, new(reviewScratch)} {
		// Decoding into a scratch request (as the server does) is
		// compared with the API server's decoder doing the same.
		var into *admissionv1.AdmissionRequest
		fresh := func() *admissionv1.AdmissionReview {
			var rev admissionv1.AdmissionReview
			if sc != nil {
				sc.reset()
				rev.Request, into = &sc.req, new(admissionv1.AdmissionRequest)
			}
			return &rev
		}
		got := fresh()
		err := decodeEnvelope(body, got, sc)
		want, wantOK := apiServerDecodes(body, into)
		if (err == nil) != wantOK {
			t.Fatalf("%q: webhook error %v, API server decoder accepts: %v", body, err, wantOK)
		}
		if err == nil && !reflect.DeepEqual(normalizeRaw(got), normalizeRaw(want)) {
			t.Fatalf("%q decodes differently:\n got %+v\nwant %+v", body, got.Request, want.Request)
		}
		fast := fresh()
		if jsonv2.Unmarshal(body, fast, envelopeOptions) == nil {
			want, wantOK := apiServerDecodes(body, into)
			if !wantOK || !reflect.DeepEqual(normalizeRaw(fast), normalizeRaw(want)) {
				t.Fatalf("%q: the fast path takes it as %+v, the API server's decoder: accepts %v, %+v", body, fast.Request, wantOK, want.Request)
			}
		}
	}
}

// normalizeRaw treats an empty raw extension like a missing one (a
// recycled scratch buffer is an empty, non-nil slice).
func normalizeRaw(rev *admissionv1.AdmissionReview) *admissionv1.AdmissionReview {
	c := *rev
	if c.Request != nil {
		r := *c.Request
		for _, raw := range []*[]byte{&r.Object.Raw, &r.OldObject.Raw, &r.Options.Raw} {
			if len(*raw) == 0 {
				*raw = nil
			}
		}
		c.Request = &r
	}
	return &c
}

func envelopeSeeds() [][]byte {
	good := review("u", "CREATE", "Pod", "n", "p", podObj("p", "nginx:1"))
	return [][]byte{good, benchDeployment("b"),
		bytes.Replace(good, []byte(`"request"`), []byte(`"bogus":1,"request"`), 1),
		bytes.Replace(good, []byte(`"uid":"u"`), []byte(`"UID":"u"`), 1),
		bytes.Replace(good, []byte(`"uid":"u"`), []byte(`"uid":"u","uid":"v"`), 1),
		bytes.Replace(good, []byte(`"uid":"u"`), []byte("\"uid\":\"u\xff\""), 1),
		// Inside the object the API server's decoder takes anything JSON:
		// the object's own decoding judges it.
		bytes.Replace(good, []byte(`"metadata":{`), []byte(`"metadata":{"x":1,"x":2,`), 1),
		bytes.Replace(good, []byte(`"metadata":{`), []byte("\"metadata\":{\"x\":\"\xff\","), 1),
		bytes.Replace(good, []byte(`"metadata":{`), []byte(`"metadata":{"Name":"q","bogus":[1,{"a":null}],`), 1),
		bytes.Replace(good, []byte(`"operation":"CREATE"`), []byte(`"operation":"CREATE","dryRun":true,"options":{"kind":"CreateOptions"}`), 1),
		bytes.Replace(good, []byte(`"operation":"CREATE"`), []byte(`"operation":"CREATE","userInfo":{"username":"a","extra":{"k":["v"]},"groups":null}`), 1),
		append(append([]byte{}, good...), " {}"...),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":null}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"x","allowed":true}}`),
		[]byte(`{"apiVersion":1}`), []byte(`[]`), []byte(`null`), []byte(` {} `),
	}
}

// TestEnvelopeLikeAPIServer: the webhook's (faster) envelope decoding
// accepts and refuses exactly what the API server's strict decoder does.
func TestEnvelopeLikeAPIServer(t *testing.T) {
	for _, b := range envelopeSeeds() {
		checkEnvelopeLikeAPIServer(t, b)
	}
}

// FuzzEnvelopeLikeAPIServer is the same comparison over any body.
func FuzzEnvelopeLikeAPIServer(f *testing.F) {
	for _, b := range envelopeSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkEnvelopeLikeAPIServer(t, body) })
}
