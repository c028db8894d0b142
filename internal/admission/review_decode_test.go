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
	for _, sc := range []*reviewScratch{nil, new(reviewScratch), newReviewScratch()} {
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

// checkOnePassLikeTwo fails when a review decoded through a scratch that
// decodes the object with the envelope (as the server does) differs from
// the same review decoded without (the envelope, then the object from its
// copied bytes): same request, same typed object, same raw JSON, or the
// same error, word for word. The scratch is used twice, the second time
// after another review, as the server's pool reuses it.
func checkOnePassLikeTwo(t *testing.T, sc *reviewScratch, body []byte) {
	t.Helper()
	_, want, wantErr := decodeReview(body, nil)
	for range 2 {
		_, got, err := decodeReview(body, sc)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("%.200q: one pass: error %v; two passes: error %v", body, err, wantErr)
		}
		if err == nil {
			g, w := *got, *want
			g.ObjectJSON, w.ObjectJSON = nil, nil
			g.OldObjectJSON, w.OldObjectJSON = nil, nil
			if !reflect.DeepEqual(g, w) || !bytes.Equal(got.ObjectJSON, want.ObjectJSON) || !bytes.Equal(got.OldObjectJSON, want.OldObjectJSON) {
				t.Fatalf("%.200q decodes differently in one pass:\n got %+v %q\nwant %+v %q", body, got.Object, got.ObjectJSON, want.Object, want.ObjectJSON)
			}
		}
		_, _, _ = decodeReview(benchDeployment("between"), sc)
	}
}

func onePassSeeds() [][]byte {
	dep := benchDeployment("b")
	seeds := append(envelopeSeeds(), dep,
		// The kind after the object: decoded in two passes.
		bytes.Replace(bytes.Replace(dep, []byte(`"kind":{"group":"apps","kind":"Deployment","version":"v1"},`), nil, 1),
			[]byte(`"operation":"CREATE"`), []byte(`"operation":"CREATE","kind":{"group":"apps","kind":"Deployment","version":"v1"}`), 1),
		// White space around the object, and objects that do not decode.
		bytes.Replace(dep, []byte(`"object":{`), []byte("\"object\" :\n\t {"), 1),
		bytes.Replace(dep, []byte(`"replicas":3`), []byte(`"replicas":"three"`), 1),
		bytes.Replace(dep, []byte(`"replicas":3`), []byte(`"replicas":3,"replicas":4`), 1),
		bytes.Replace(dep, []byte(`"replicas":3`), []byte(`"Replicas":3,"bogus":[{"x":1}]`), 1),
		bytes.Replace(dep, []byte(`"cpu":"500m"`), []byte(`"cpu":"5 00m"`), 1),
		bytes.Replace(dep, []byte(`"containerPort":8080`), []byte(`"containerPort":8080.5`), 1),
		bytes.Replace(dep, []byte(`"name":"web"`), []byte("\"name\":\"w\xffb\""), 1),
		bytes.Replace(dep, []byte(`"object":{`), []byte(`"object":null,"x":{`), 1),
		bytes.Replace(dep, []byte(`"kind":"Deployment","version"`), []byte(`"kind":"Service","version"`), 1),
		bytes.Replace(dep, []byte(`"operation":"CREATE"`), []byte(`"operation":"DELETE"`), 1),
		bytes.Replace(dep, []byte(`"object":{`), []byte(`"object":[{`), 1),
	)
	return seeds
}

// TestOnePassLikeTwo: decoding the object with the envelope changes
// nothing a review decodes to, nor any error.
func TestOnePassLikeTwo(t *testing.T) {
	sc := newReviewScratch()
	for _, b := range onePassSeeds() {
		checkOnePassLikeTwo(t, sc, b)
	}
	// Reviews the server sees take the one-pass path, the lenient
	// object cases included.
	dep := benchDeployment("x")
	for i, b := range [][]byte{dep,
		bytes.Replace(dep, []byte(`"object":{`), []byte("\"object\" :\n\t {"), 1),
		bytes.Replace(dep, []byte(`"replicas":3`), []byte(`"Replicas":3,"bogus":[{"x":1}]`), 1),
		bytes.Replace(dep, []byte(`"name":"web"`), []byte("\"name\":\"w\xffb\""), 1),
		bytes.Replace(dep, []byte(`"operation":"CREATE"`), []byte(`"operation":"UPDATE","oldObject":{"kind":"x"}`), 1),
	} {
		_, _, err := decodeReviewInto(b, sc)
		if err != nil || sc.typed == nil {
			t.Errorf("review %d was not decoded in one pass (err %v)", i, err)
		}
	}
}

// FuzzOnePassLikeTwo is the same comparison over any body.
func FuzzOnePassLikeTwo(f *testing.F) {
	for _, b := range onePassSeeds() {
		f.Add(b)
	}
	sc := newReviewScratch()
	f.Fuzz(func(t *testing.T, body []byte) { checkOnePassLikeTwo(t, sc, body) })
}
