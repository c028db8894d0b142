package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// ErrUnsupportedKind is returned by DecodeObject for kinds that hold no pod
// template.
var ErrUnsupportedKind = errors.New("unsupported kind")

// kinds are the objects policies judge: pods and every controller that
// creates them.
var kinds = []string{"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"}

// Kinds lists the kinds policies judge.
func Kinds() []string { return slices.Clone(kinds) }

// DecodeObject decodes the JSON of an object of kind into its typed form.
// Unknown fields are ignored, as the API server's own decoding of a newer
// client's object would not be Bulwark's business.
//
// The semantics are encoding/json's (v1: names matched case-insensitively,
// duplicates allowed, invalid UTF-8 replaced), run by go-json-experiment's
// engine, which does it in 60% of the time and allocations for a typical
// Deployment (the webhook's largest single cost per review; a test checks
// both agree).
func DecodeObject(kind string, raw []byte) (runtime.Object, error) {
	obj, err := newObject(kind)
	if err != nil {
		return nil, err
	}
	if jsonv2.Unmarshal(raw, obj, fastObjectOptions) == nil {
		return obj, nil
	}
	// The error, worded as encoding/json words it, from a fresh object.
	obj, _ = newObject(kind)
	if err := jsonv2.Unmarshal(raw, obj, jsonv1.DefaultOptionsV1()); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return obj, nil
}

// fastObjectOptions are encoding/json's semantics reporting errors as
// soon as met: with ReportErrorsWithLegacySemantics on, the engine scans
// the whole object once more before decoding it, to report syntax errors
// encoding/json's way. Everything that decodes, decodes alike; what does
// not is decoded again with the legacy reporting, for its error.
var fastObjectOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv1.ReportErrorsWithLegacySemantics(false))

// DecodeObjectFrom decodes the next value of dec into an object of kind
// as DecodeObject decodes raw, for a caller reading the enclosing document
// (the webhook's AdmissionReview) in one pass rather than copying the
// object out and parsing it again. dec's own options stay in force: a
// duplicate name it refuses is an error here, where DecodeObject takes the
// last. On any error the caller is to decode the raw value with
// DecodeObject, which has the last word and words the error.
func DecodeObjectFrom(dec *jsontext.Decoder, kind string) (runtime.Object, error) {
	obj, err := newObject(kind)
	if err != nil {
		return nil, err
	}
	if err := jsonv2.UnmarshalDecode(dec, obj, inlineObjectOptions); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return obj, nil
}

// inlineObjectOptions are fastObjectOptions for an object inside a
// document decoded with other options: they replace the document's (the
// envelope's strict names, its own unmarshal functions). DefaultOptionsV1
// sets only the options that are on in v1, so those v1 leaves off are
// turned off here explicitly.
var inlineObjectOptions = jsonv2.JoinOptions(fastObjectOptions, jsonv2.RejectUnknownMembers(false), jsonv2.WithUnmarshalers(nil))

// newObject is an empty object of kind.
func newObject(kind string) (runtime.Object, error) {
	switch kind {
	case "Pod":
		return &corev1.Pod{}, nil
	case "Deployment":
		return &appsv1.Deployment{}, nil
	case "ReplicaSet":
		return &appsv1.ReplicaSet{}, nil
	case "StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "Job":
		return &batchv1.Job{}, nil
	case "CronJob":
		return &batchv1.CronJob{}, nil
	case "ReplicationController":
		return &corev1.ReplicationController{}, nil
	}
	return nil, fmt.Errorf("decode %s: %w", kind, ErrUnsupportedKind)
}

// podSpec returns the pod template (metadata and spec) of a supported
// object, or nils.
func podSpec(obj runtime.Object) (*metav1.ObjectMeta, *corev1.PodSpec) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &o.ObjectMeta, &o.Spec
	case *appsv1.Deployment:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.ReplicaSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *batchv1.Job:
		return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec
	case *corev1.ReplicationController:
		if o.Spec.Template != nil {
			return &o.Spec.Template.ObjectMeta, &o.Spec.Template.Spec
		}
	}
	return nil, nil
}

// container is one container of a pod spec with its image.
type container struct {
	Name, Image, Kind string // Kind: containers, initContainers, ephemeralContainers
}

func containers(spec *corev1.PodSpec) []container {
	if spec == nil {
		return nil
	}
	out := make([]container, 0, len(spec.InitContainers)+len(spec.Containers)+len(spec.EphemeralContainers))
	for _, c := range spec.InitContainers {
		out = append(out, container{c.Name, c.Image, "initContainers"})
	}
	for _, c := range spec.Containers {
		out = append(out, container{c.Name, c.Image, "containers"})
	}
	for _, c := range spec.EphemeralContainers {
		out = append(out, container{c.Name, c.Image, "ephemeralContainers"})
	}
	return out
}

// UserInfo is who sent the request.
type UserInfo struct {
	Username string   `json:"username"`
	UID      string   `json:"uid,omitempty"`
	Groups   []string `json:"groups,omitempty"`
}

// Request is one thing to judge: an admission request, or a manifest in a
// pipeline.
type Request struct {
	UID string
	// Operation is CREATE, UPDATE, DELETE or CONNECT.
	Operation string
	// Kind of the object (Pod, Deployment, ...); for CONNECT the options
	// kind (PodExecOptions, ...).
	Kind string
	// SubResource is exec, attach or portforward for CONNECT.
	SubResource string
	Namespace   string
	Name        string
	// Object is the typed object (nil for CONNECT); ObjectJSON its JSON,
	// for custom rules (derived from Object when empty).
	Object        runtime.Object
	ObjectJSON    []byte
	OldObjectJSON []byte
	// NamespaceObject is the namespace the object lives in, for namespace
	// selectors and custom rules. Nil means unknown (a manifest in a
	// pipeline): namespace selectors then match, so the gate errs on the
	// strict side.
	NamespaceObject *corev1.Namespace
	User            UserInfo
	DryRun          bool
	// Images looks up image verdicts; nil: vulnerability rules report
	// every image as unavailable.
	Images ImageSource
	// Params reads the ConfigMaps policies name in spec.paramRef; nil:
	// none can be read (those rules are violations).
	Params ParamSource
	// ParamObjects reads the param resources of policies with a
	// spec.paramKind; nil: none can be read (those rules are violations).
	ParamObjects ObjectParamSource
	// ImageRulesOnly judges only the rules about the images (vulnerabilities,
	// unscanned, provenance): `bulwark scan image --policy`, where the pod
	// around the image is not known.
	ImageRulesOnly bool
	// FailOpen admits, with a warning, images whose findings cannot be
	// had (central unreachable and nothing cached); otherwise that is a
	// violation of the vulnerability rule (in the policy's mode).
	FailOpen bool
}

// ParamSource reads the data of a ConfigMap in Bulwark's namespace, for
// the custom rules of a policy whose spec.paramRef names it. found is
// false when it does not exist; errors mean the answer could not be had.
// The map must not change once returned.
type ParamSource interface {
	ConfigMapData(ctx context.Context, name string) (data map[string]string, found bool, err error)
}

// StaticParams is a ParamSource over ConfigMaps known beforehand (the
// pipeline gate's, from the manifests), by name.
type StaticParams map[string]map[string]string

// ConfigMapData implements ParamSource.
func (p StaticParams) ConfigMapData(_ context.Context, name string) (map[string]string, bool, error) {
	d, ok := p[name]
	return d, ok, nil
}

// ParamQuery asks for the param resources of a policy with spec.paramKind
// (ValidatingAdmissionPolicy's paramKind and paramRef).
type ParamQuery struct {
	APIVersion, Kind string
	// Name, or Selector (every object whose labels match): one of the two.
	Name     string
	Selector labels.Selector
	// Namespace is paramRef.namespace. Empty: the request's namespace
	// (RequestNamespace) for a namespaced kind, none for a cluster-scoped
	// one, as ValidatingAdmissionPolicy does.
	Namespace        string
	RequestNamespace string
}

// String names the query in messages and is its cache key.
func (q *ParamQuery) String() string {
	s := q.Kind + " (" + q.APIVersion + ")"
	ns := q.Namespace
	if ns == "" {
		ns = q.RequestNamespace + "?" // the request's, if the kind is namespaced
	}
	if q.Name != "" {
		return s + " " + ns + "/" + q.Name
	}
	return s + " in " + ns + " selected by {" + q.Selector.String() + "}"
}

// ParamObject is one param resource: its namespace and name (for
// messages) and its content as CEL's params (the whole object, JSON-shaped).
type ParamObject struct {
	Namespace, Name string
	Object          map[string]any
}

// ObjectParamSource reads param resources of any kind. No object found is
// an empty answer, not an error; errors mean the answer could not be had.
// The objects must not change once returned.
type ObjectParamSource interface {
	ParamObjects(ctx context.Context, q *ParamQuery) ([]ParamObject, error)
}

// ImageSource gives the vulnerability verdict input for an image.
type ImageSource interface {
	// ImageFindings resolves ref to a digest and returns what the last
	// scan found. An image never scanned is a report with Scanned false,
	// not an error; errors mean the answer could not be had. A report's
	// Findings must not change once returned (verdicts on them are kept,
	// see Set.vulnVerdict): new findings come in a new slice.
	ImageFindings(ctx context.Context, ref string) (*ImageReport, error)
}

// Scanner is implemented by image sources that can scan an image on demand
// (for `unscanned: scan`).
type Scanner interface {
	ScanImage(ctx context.Context, ref string) (*ImageReport, error)
}

// ImageReport is the findings of one image.
type ImageReport struct {
	Ref     string `json:"ref"`
	Digest  string `json:"digest,omitempty"`
	Scanned bool   `json:"scanned"`
	// Findings are the open (unsuppressed) findings.
	Findings []Finding `json:"findings,omitempty"`
	// Stale is set when the report is a cached answer past its freshness
	// because central could not be reached.
	Stale bool `json:"stale,omitempty"`
}

// Finding is one vulnerability of an image, as much as rules need.
type Finding struct {
	ID            string          `json:"id"`
	Aliases       []string        `json:"aliases,omitempty"`
	Package       string          `json:"package"`
	Version       string          `json:"version"`
	FixedVersions []string        `json:"fixedVersions,omitempty"`
	Severity      vulndb.Severity `json:"severity"`
	CVSS          float64         `json:"cvss,omitempty"`
	KEV           bool            `json:"kev,omitempty"`
}

// StaticImages is an ImageSource over reports known in advance (a scan
// result in a pipeline), keyed by the reference as written.
type StaticImages map[string]*ImageReport

// ImageFindings implements ImageSource.
func (s StaticImages) ImageFindings(_ context.Context, ref string) (*ImageReport, error) {
	if r, ok := s[ref]; ok {
		return r, nil
	}
	return &ImageReport{Ref: ref}, nil
}

// Images lists the container images of an object's pod spec, in order
// (init containers, containers, ephemeral containers), without repeats.
func Images(obj runtime.Object) []string {
	_, spec := podSpec(obj)
	var out []string
	for _, c := range containers(spec) {
		if c.Image != "" && !slices.Contains(out, c.Image) {
			out = append(out, c.Image)
		}
	}
	return out
}

// StaticObjects is an ObjectParamSource over objects known beforehand (the
// pipeline gate's, from the manifests).
type StaticObjects []ParamResource

// ParamResource is one object of a StaticObjects.
type ParamResource struct {
	APIVersion, Kind, Namespace, Name string
	Labels                            map[string]string
	Object                            map[string]any
}

// NewParamResource reads an object's identity from its JSON-shaped form.
func NewParamResource(obj map[string]any) ParamResource {
	r := ParamResource{Object: obj}
	r.APIVersion, _ = obj["apiVersion"].(string)
	r.Kind, _ = obj["kind"].(string)
	if md, ok := obj["metadata"].(map[string]any); ok {
		r.Namespace, _ = md["namespace"].(string)
		r.Name, _ = md["name"].(string)
		if ls, ok := md["labels"].(map[string]any); ok {
			r.Labels = make(map[string]string, len(ls))
			for k, v := range ls {
				if s, ok := v.(string); ok {
					r.Labels[k] = s
				}
			}
		}
	}
	return r
}

// ParamObjects implements ObjectParamSource. Whether a kind is namespaced
// is not known here: an object without a namespace matches any (a
// cluster-scoped object, or one the pipeline would apply in its default
// namespace); one with a namespace matches paramRef.namespace, else the
// request's.
func (s StaticObjects) ParamObjects(_ context.Context, q *ParamQuery) ([]ParamObject, error) {
	ns := q.Namespace
	if ns == "" {
		ns = q.RequestNamespace
	}
	var out []ParamObject
	for i := range s {
		o := &s[i]
		if o.APIVersion != q.APIVersion || o.Kind != q.Kind || (q.Name != "" && o.Name != q.Name) ||
			(q.Selector != nil && !q.Selector.Matches(labels.Set(o.Labels))) || (o.Namespace != "" && o.Namespace != ns) {
			continue
		}
		out = append(out, ParamObject{Namespace: o.Namespace, Name: o.Name, Object: o.Object})
	}
	return out, nil
}
