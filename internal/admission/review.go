package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	sigsjson "sigs.k8s.io/json"

	"github.com/bulwark-security/bulwark/internal/policy"
)

// ErrBadReview is wrapped by every decode error: the webhook answers 400 and
// the API server applies the webhook's failurePolicy. A body the webhook
// could not read is never admitted by the webhook itself.
var ErrBadReview = errors.New("bad AdmissionReview")

// connectKinds are the options kinds of the CONNECT subresources judged.
var connectKinds = map[string]string{"PodExecOptions": "exec", "PodAttachOptions": "attach", "PodPortForwardOptions": "portforward"}

// DecodeReview reads one AdmissionReview (admission.k8s.io/v1) strictly:
// unknown fields, trailing data, a missing request or uid, an unsupported
// kind or an object that does not decode are errors wrapping ErrBadReview.
// The returned request's Images and FailOpen are for the caller to set.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, *policy.Request, error) {
	return decodeReview(body, nil)
}

// reviewScratch is what one review's decoding reuses from the last: the
// request struct and the buffers its raw object, old object and options
// are copied into (RawExtension appends to the slice it holds; ~2 KB of
// garbage per review otherwise). The decoded review and request refer to
// it until the scratch is released.
type reviewScratch struct {
	req            admissionv1.AdmissionRequest
	obj, old, opts []byte
	// body is the review being decoded, typed the object decoded from
	// it in the same pass (see inlineObject), for kind typedKind.
	body      []byte
	typed     runtime.Object
	typedKind string
	// envOpts are envelopeOptions with inlineObject (nil: without).
	envOpts jsonv2.Options
}

// newReviewScratch is a scratch whose envelope decoding decodes the
// object in the same pass.
func newReviewScratch() *reviewScratch {
	sc := &reviewScratch{}
	sc.envOpts = jsonv2.JoinOptions(envelopeOptions, jsonv2.WithUnmarshalers(jsonv2.UnmarshalFromFunc(sc.inlineObject)))
	return sc
}

// inlineObject decodes request.object into its typed form while the
// envelope is read, when the request's kind came before it (the API
// server writes kind first) and is one policies judge: the object's bytes
// are then parsed once, not copied out and parsed again. The raw object
// is kept as RawExtension keeps it (custom rules and records read it).
// Anything else is left to RawExtension's own decoding, and a value that
// does not decode fails the envelope's fast path: the fallback decodes the
// review the API server's way and the object with policy.DecodeObject,
// which words the error, so what a review decodes to, or the error it
// gets, is the same with or without this (a test and a fuzz target
// compare both).
func (sc *reviewScratch) inlineObject(dec *jsontext.Decoder, re *runtime.RawExtension) error {
	if re != &sc.req.Object || sc.body == nil || dec.PeekKind() != '{' || !slices.Contains(policyKinds, sc.req.Kind.Kind) {
		return jsonv2.SkipFunc
	}
	start := dec.InputOffset()
	obj, err := policy.DecodeObjectFrom(dec, sc.req.Kind.Kind)
	if err != nil {
		return err
	}
	end := dec.InputOffset()
	if start < 0 || end > int64(len(sc.body)) || start > end {
		return fmt.Errorf("object at %d..%d outside the body", start, end)
	}
	// Between the name and the value: the colon and white space.
	re.Raw = append(re.Raw[:0], bytes.TrimLeft(sc.body[start:end], " \t\r\n:")...)
	sc.typed, sc.typedKind = obj, sc.req.Kind.Kind
	return nil
}

// policyKinds are the kinds policies judge (policy.Kinds, copied once).
var policyKinds = policy.Kinds()

// maxScratchBytes bounds a buffer kept for the next review: a rare huge
// object is left to the collector rather than held.
const maxScratchBytes = 64 << 10

// reset prepares sc for the next review, keeping the buffers the last
// one grew (when not too large).
func (sc *reviewScratch) reset() {
	keep := func(b []byte, into *[]byte) {
		if cap(b) <= maxScratchBytes && cap(b) > cap(*into) {
			*into = b[:0]
		}
	}
	keep(sc.req.Object.Raw, &sc.obj)
	keep(sc.req.OldObject.Raw, &sc.old)
	keep(sc.req.Options.Raw, &sc.opts)
	sc.typed, sc.typedKind = nil, ""
	sc.req = admissionv1.AdmissionRequest{Object: runtime.RawExtension{Raw: sc.obj[:0]},
		OldObject: runtime.RawExtension{Raw: sc.old[:0]}, Options: runtime.RawExtension{Raw: sc.opts[:0]}}
}

// decodeReview is DecodeReview decoding into sc when not nil (see
// reviewScratch). A body that does not decode is decoded again without
// sc: a review without a request would otherwise leave sc's (empty)
// request in place and be refused for its empty uid, not for having no
// request. Only refusals pay for it.
func decodeReview(body []byte, sc *reviewScratch) (*admissionv1.AdmissionReview, *policy.Request, error) {
	if sc == nil {
		return decodeReviewInto(body, nil)
	}
	rev, req, err := decodeReviewInto(body, sc)
	if err != nil {
		return decodeReviewInto(body, nil)
	}
	return rev, req, nil
}

// envelopeOptions decode the AdmissionReview as the API server's own
// decoder does (sigs.k8s.io/json: encoding/json's semantics with
// case-sensitive names, DisallowUnknownFields, DisallowDuplicateFields),
// or more strictly: encoding/json's options, then unknown names refused,
// names matched exactly, and duplicate names refused everywhere (also
// inside the object, where the API server's decoder leaves them to the
// object's own decoding). Errors are reported as soon as met
// (ReportErrorsWithLegacySemantics off): with it on, the engine first
// scans the whole body once more to report syntax errors encoding/json's
// way, a pass over every byte of every review; the error path is the
// fallback's anyway, and the option changes nothing else that decodes.
var envelopeOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv1.ReportErrorsWithLegacySemantics(false),
	jsonv2.RejectUnknownMembers(true), jsonv2.MatchCaseInsensitiveNames(false), jsontext.AllowDuplicateNames(false))

// decodeEnvelope decodes body into rev (whose Request may point at a
// scratch request to decode into) exactly as sigs.k8s.io/json's strict
// decoding does. The fast path is go-json-experiment (encoding/json/v2's
// engine) with envelopeOptions: half the CPU of sigs.k8s.io/json for the
// benchmark's 3 KB review and 5 allocations against 33. What it accepts
// the API server's decoder accepts alike (a test and a fuzz target check
// it); what it refuses is decoded again by sigs.k8s.io/json, which has the
// last word and words the error, so only refused or unusual bodies (a
// duplicate name inside the object) pay twice.
func decodeEnvelope(body []byte, rev *admissionv1.AdmissionReview, sc *reviewScratch) error {
	opts := envelopeOptions
	if sc != nil && sc.envOpts != nil {
		opts = sc.envOpts
		sc.body = body
		defer func() { sc.body = nil }()
	}
	if jsonv2.Unmarshal(body, rev, opts) == nil {
		return nil
	}
	*rev = admissionv1.AdmissionReview{}
	if sc != nil {
		sc.reset()
		rev.Request = &sc.req
	}
	strict, err := sigsjson.UnmarshalStrict(body, rev, sigsjson.DisallowUnknownFields, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return errors.Join(strict...)
	}
	return nil
}

func decodeReviewInto(body []byte, sc *reviewScratch) (*admissionv1.AdmissionReview, *policy.Request, error) {
	var rev admissionv1.AdmissionReview
	if sc != nil {
		sc.reset()
		rev.Request = &sc.req // decoded into: its raw buffers are reused
	}
	if err := decodeEnvelope(body, &rev, sc); err != nil {
		if trailingData(body) {
			return nil, nil, fmt.Errorf("%w: trailing data after the JSON body", ErrBadReview)
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrBadReview, err)
	}
	if rev.APIVersion != "admission.k8s.io/v1" || rev.Kind != "AdmissionReview" {
		return nil, nil, fmt.Errorf("%w: apiVersion %q kind %q: want admission.k8s.io/v1 AdmissionReview", ErrBadReview, rev.APIVersion, rev.Kind)
	}
	r := rev.Request
	if r == nil {
		return nil, nil, fmt.Errorf("%w: no request", ErrBadReview)
	}
	if r.UID == "" {
		return nil, nil, fmt.Errorf("%w: request.uid is empty", ErrBadReview)
	}
	req := &policy.Request{UID: string(r.UID), Operation: string(r.Operation), Kind: r.Kind.Kind, SubResource: r.SubResource,
		Namespace: r.Namespace, Name: r.Name, User: policy.UserInfo{Username: r.UserInfo.Username, UID: r.UserInfo.UID, Groups: r.UserInfo.Groups}}
	if r.DryRun != nil {
		req.DryRun = *r.DryRun
	}
	switch r.Operation {
	case admissionv1.Connect:
		sub, ok := connectKinds[r.Kind.Kind]
		if !ok || sub != r.SubResource {
			return nil, nil, fmt.Errorf("%w: CONNECT of %s/%s is not judged by Bulwark (configure pods/exec, pods/attach or pods/portforward only)", ErrBadReview, r.Kind.Kind, r.SubResource)
		}
		return &rev, req, nil
	case admissionv1.Create, admissionv1.Update:
	case admissionv1.Delete:
		return &rev, req, nil
	default:
		return nil, nil, fmt.Errorf("%w: operation %q", ErrBadReview, r.Operation)
	}
	if r.SubResource != "" {
		return nil, nil, fmt.Errorf("%w: subresource %q of %s is not judged by Bulwark", ErrBadReview, r.SubResource, r.Kind.Kind)
	}
	if !slices.Contains(policyKinds, r.Kind.Kind) {
		return nil, nil, fmt.Errorf("%w: kind %s/%s is not judged by Bulwark (remove it from the webhook's rules)", ErrBadReview, r.Kind.Group, r.Kind.Kind)
	}
	if len(r.Object.Raw) == 0 {
		return nil, nil, fmt.Errorf("%w: %s without an object", ErrBadReview, r.Operation)
	}
	var obj runtime.Object
	if sc != nil && sc.typed != nil && sc.typedKind == r.Kind.Kind {
		obj = sc.typed // decoded with the envelope
	} else {
		var err error
		if obj, err = policy.DecodeObject(r.Kind.Kind, r.Object.Raw); err != nil {
			return nil, nil, fmt.Errorf("%w: object: %v", ErrBadReview, err)
		}
	}
	req.Object, req.ObjectJSON, req.OldObjectJSON = obj, r.Object.Raw, r.OldObject.Raw
	if req.Name == "" {
		if m, ok := obj.(metav1.Object); ok {
			// Pods of controllers have only a generateName ("web-5d8f-")
			// at admission: name them by it in messages and exemptions.
			req.Name = m.GetName()
			if req.Name == "" {
				req.Name = m.GetGenerateName()
			}
		}
	}
	return &rev, req, nil
}

// trailingData tells whether body is one JSON value followed by more than
// white space (to say so, rather than "invalid character", on the error
// path only).
func trailingData(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return false
	}
	_, err := dec.Token()
	return !errors.Is(err, io.EOF)
}

// response builds the AdmissionReview answer for a decision.
func response(req *policy.Request, d *policy.Decision) *admissionv1.AdmissionReview {
	out := &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: types.UID(req.UID), Allowed: d.Allowed},
	}
	if !d.Allowed {
		out.Response.Result = &metav1.Status{Status: metav1.StatusFailure, Code: 403, Reason: metav1.StatusReasonForbidden,
			Message: truncate(d.Message(describe(req)), maxMessage)}
	}
	out.Response.Warnings = warnings(d.Warnings())
	return out
}

// maxMessage bounds a denial message; the decision record keeps everything.
const maxMessage = 16 << 10

// warnings bounds what is sent: the API server truncates beyond 4096 runes
// in total anyway, and an unreadable flood helps nobody.
func warnings(ws []string) []string {
	const maxTotal, maxEach = 4000, 512
	var out []string
	total := 0
	for i, w := range ws {
		w = truncate(w, maxEach)
		if total+len(w) > maxTotal {
			out = append(out, fmt.Sprintf("... and %d more warnings (see the Bulwark decision log)", len(ws)-i))
			break
		}
		total += len(w)
		out = append(out, w)
	}
	return out
}
