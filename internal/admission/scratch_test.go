package admission

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDecodeReviewScratch decodes reviews of different shapes one after
// the other through one scratch (as the server does): each comes out as
// DecodeReview alone gives it, nothing of an earlier one left over, and a
// refused body is refused for the same reason.
func TestDecodeReviewScratch(t *testing.T) {
	withOld := func(body []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		req := m["request"].(map[string]any)
		req["oldObject"] = req["object"]
		req["operation"] = "UPDATE"
		out, _ := json.Marshal(m)
		return out
	}
	big := benchDeployment("a")
	small := review("b", "CREATE", "Pod", "prod", "p", map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "p"}, "spec": map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x"}}}})
	bodies := [][]byte{withOld(big), small, big, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), small,
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`), withOld(small)}
	type view struct {
		UID, Op, Kind, Name     string
		Object, OldObject, Err  string
		HasObject, HasOldObject bool
	}
	see := func(body []byte, sc *reviewScratch) view {
		_, req, err := decodeReview(body, sc)
		if err != nil {
			return view{Err: err.Error()}
		}
		return view{UID: req.UID, Op: req.Operation, Kind: req.Kind, Name: req.Name, Object: string(req.ObjectJSON),
			OldObject: string(req.OldObjectJSON), HasObject: req.Object != nil, HasOldObject: len(req.OldObjectJSON) > 0}
	}
	sc := new(reviewScratch)
	for i, b := range bodies {
		want := see(b, nil)
		if diff := cmp.Diff(want, see(b, sc)); diff != "" {
			t.Errorf("body %d (-alone +through the scratch):\n%s", i, diff)
		}
	}
	if want := see(bodies[3], nil); want.Err == "" || !json.Valid(bodies[3]) {
		t.Fatalf("a review without a request decoded: %+v", want)
	}
}
