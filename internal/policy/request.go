package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	var obj runtime.Object
	switch kind {
	case "Pod":
		obj = &corev1.Pod{}
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "ReplicaSet":
		obj = &appsv1.ReplicaSet{}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "DaemonSet":
		obj = &appsv1.DaemonSet{}
	case "Job":
		obj = &batchv1.Job{}
	case "CronJob":
		obj = &batchv1.CronJob{}
	case "ReplicationController":
		obj = &corev1.ReplicationController{}
	default:
		return nil, fmt.Errorf("decode %s: %w", kind, ErrUnsupportedKind)
	}
	if err := jsonv2.Unmarshal(raw, obj, jsonv1.DefaultOptionsV1()); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return obj, nil
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
	// ImageRulesOnly judges only the rules about the images (vulnerabilities,
	// unscanned, provenance): `bulwark scan image --policy`, where the pod
	// around the image is not known.
	ImageRulesOnly bool
	// FailOpen admits, with a warning, images whose findings cannot be
	// had (central unreachable and nothing cached); otherwise that is a
	// violation of the vulnerability rule (in the policy's mode).
	FailOpen bool
}

// ImageSource gives the vulnerability verdict input for an image.
type ImageSource interface {
	// ImageFindings resolves ref to a digest and returns what the last
	// scan found. An image never scanned is a report with Scanned false,
	// not an error; errors mean the answer could not be had.
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
