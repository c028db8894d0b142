package live

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/posture"
)

// Options select what Collect reads.
type Options struct {
	// Namespaces limits the namespaced kinds to these namespaces; empty
	// reads all. Cluster-scoped kinds (ClusterRoles, ClusterRoleBindings)
	// are always read: they decide what subjects in the namespaces can do.
	Namespaces []string
	// PageSize is the Limit of each list call (default 500).
	PageSize int64
	// Source names the cluster in object references (default "cluster").
	Source string
}

// kind is one resource Collect lists: its kind name, its API version and
// how to list one page of it in a namespace ("" = all namespaces or a
// cluster-scoped kind).
type kind struct {
	name, apiVersion, resource string
	namespaced                 bool
	list                       func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) ([]runtime.Object, string, error)
}

// items turns a typed list's items into pointers to each, so the
// evaluator sees one object per item without copying.
func items[T any, P interface {
	*T
	runtime.Object
}](in []T) []runtime.Object {
	out := make([]runtime.Object, len(in))
	for i := range in {
		out[i] = P(&in[i])
	}
	return out
}

// Kinds are the resources the catalogue evaluates, in the order they are
// read. Exported so the documented ClusterRole can be checked against it.
var Kinds = kinds()

// Resource is one (API group, resource) Collect lists.
type Resource struct{ Group, Resource, Kind string }

// Resources lists what the read-only ClusterRole must allow (verb list;
// plus get on namespaces when namespaces are selected).
func Resources() []Resource {
	out := make([]Resource, 0, len(Kinds))
	for _, k := range Kinds {
		g := ""
		if i := indexByte(k.apiVersion, '/'); i >= 0 {
			g = k.apiVersion[:i]
		}
		out = append(out, Resource{Group: g, Resource: k.resource, Kind: k.name})
	}
	return out
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// Collect lists every kind of Kinds and returns them as decoded objects
// for posture.Evaluator. Forbidden lists are recorded in Unavailable (kind
// -> the API server's message); any other error ends the collection.
// Pods, ReplicaSets and Jobs that a controller owns are reported as skipped
// (their controller's pod template is evaluated instead), so one workload
// is not counted three times.
func Collect(ctx context.Context, cs kubernetes.Interface, opt Options) (*posture.Decoded, error) {
	if opt.PageSize <= 0 {
		opt.PageSize = 500
	}
	if opt.Source == "" {
		opt.Source = "cluster"
	}
	out := &posture.Decoded{Unavailable: map[string]string{}}
	for _, k := range Kinds {
		scopes := []string{""}
		if k.namespaced && len(opt.Namespaces) > 0 {
			scopes = opt.Namespaces
		}
		if k.name == "Namespace" && len(opt.Namespaces) > 0 {
			if err := getNamespaces(ctx, cs, opt, out); err != nil {
				return nil, err
			}
			continue
		}
		for _, ns := range scopes {
			cont := ""
			for {
				objs, next, err := k.list(ctx, cs, ns, metav1.ListOptions{Limit: opt.PageSize, Continue: cont})
				if err != nil {
					if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
						out.Unavailable[k.name] = forbidden(k, ns, err)
						break
					}
					return nil, fmt.Errorf("list %s: %w", k.resource, err)
				}
				for _, o := range objs {
					add(out, opt.Source, k, o)
				}
				if next == "" {
					break
				}
				cont = next
			}
		}
	}
	if len(out.Unavailable) == 0 {
		out.Unavailable = nil
	}
	return out, nil
}

func forbidden(k kind, ns string, err error) string {
	where := "in all namespaces"
	if ns != "" {
		where = "in namespace " + ns
	}
	if !k.namespaced {
		where = "(cluster-scoped)"
	}
	return fmt.Sprintf("cannot list %s %s: %v", k.resource, where, err)
}

func getNamespaces(ctx context.Context, cs kubernetes.Interface, opt Options, out *posture.Decoded) error {
	nsKind := Kinds[len(Kinds)-1]
	for _, n := range opt.Namespaces {
		o, err := cs.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		switch {
		case err == nil:
			add(out, opt.Source, nsKind, o)
		case apierrors.IsNotFound(err):
			out.Errors = append(out.Errors, posture.DecodeError{Source: opt.Source, Err: "namespace " + n + " does not exist"})
		case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err):
			out.Unavailable["Namespace"] = "cannot get namespace " + n + ": " + err.Error()
		default:
			return fmt.Errorf("get namespace %s: %w", n, err)
		}
	}
	return nil
}

func add(out *posture.Decoded, source string, k kind, o runtime.Object) {
	m, err := metaOf(o)
	if err != nil {
		out.Errors = append(out.Errors, posture.DecodeError{Source: source, Err: err.Error()})
		return
	}
	ref := posture.ObjectRef{Source: source, APIVersion: k.apiVersion, Kind: k.name, Namespace: m.GetNamespace(), Name: m.GetName()}
	if owner := controllerOf(k.name, m.GetOwnerReferences()); owner != "" {
		out.Skipped = append(out.Skipped, posture.Skip{Object: ref, Reason: "owned by " + owner + ": evaluated through its controller's pod template"})
		return
	}
	out.Objects = append(out.Objects, posture.Object{Ref: ref, Typed: o})
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", o)
	}
	return m, nil
}

// controllerOf names the controller owning a Pod, ReplicaSet or Job whose
// own controller Collect also evaluates ("" otherwise).
func controllerOf(kind string, refs []metav1.OwnerReference) string {
	for _, r := range refs {
		if r.Controller == nil || !*r.Controller {
			continue
		}
		switch {
		case kind == "Pod" && (r.Kind == "ReplicaSet" || r.Kind == "StatefulSet" || r.Kind == "DaemonSet" || r.Kind == "Job" || r.Kind == "ReplicationController"),
			kind == "ReplicaSet" && r.Kind == "Deployment",
			kind == "Job" && r.Kind == "CronJob":
			return r.Kind + "/" + r.Name
		}
	}
	return ""
}
