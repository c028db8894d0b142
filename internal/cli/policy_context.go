package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/admission"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/posture"
)

// gateOptions are `bulwark policy test`'s inputs besides the manifests.
type gateOptions struct {
	namespace, paramsNamespace string
	images                     policy.ImageSource
	failOpen                   bool
	// applyFixes judges objects as the mutating webhook leaves them.
	applyFixes bool
	// namespaceLabels are --namespace-labels: namespace → labels.
	namespaceLabels map[string]map[string]string
	// cluster is --cluster's client (nil without): namespaces and paramRef
	// ConfigMaps not among the manifests are read from it.
	cluster       kubernetes.Interface
	clusterParams policy.ObjectParamSource
}

// gateNamespaces gives each judged object its namespace as the API server
// gives it to the webhook, from (in order) the manifests, --namespace-labels
// and the cluster; it remembers the namespaces known from none of them.
type gateNamespaces struct {
	given   map[string]*corev1.Namespace
	labels  map[string]map[string]string
	cluster *admission.ClientNamespaces
	// needed: some policy reads namespace labels. Otherwise nothing is
	// looked up (and no note is made).
	needed  bool
	unknown map[string]string // namespace → why its labels are unknown
}

func (g *gateNamespaces) get(ctx context.Context, name string) (*corev1.Namespace, error) {
	if !g.needed {
		return nil, nil
	}
	if ns := g.given[name]; ns != nil {
		return withNameLabel(ns), nil
	}
	if l, ok := g.labels[name]; ok {
		return withNameLabel(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}), nil
	}
	why := "not among the manifests or --namespace-labels, and --cluster not given"
	if g.cluster != nil {
		ns, err := g.cluster.Namespace(ctx, name)
		if err == nil {
			return ns, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("namespace %s: read from the cluster (--cluster): %w", name, err)
		}
		why = "not among the manifests or --namespace-labels, and not in the cluster"
	}
	if g.unknown == nil {
		g.unknown = map[string]string{}
	}
	g.unknown[name] = why
	return nil, nil
}

// notes says, per namespace whose labels were unknown, how it was judged.
func (g *gateNamespaces) notes() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(g.unknown)) {
		out = append(out, fmt.Sprintf("namespace %q: labels unknown (%s): judged as if every namespaceSelector matched it, with namespaceObject null; "+
			"give its labels with --namespace-labels, a Namespace manifest or --cluster", name, g.unknown[name]))
	}
	return out
}

// withNameLabel is ns with the kubernetes.io/metadata.name label the API
// server sets on every namespace (a manifest or --namespace-labels
// lacks it; selectors on it must still match).
func withNameLabel(ns *corev1.Namespace) *corev1.Namespace {
	if ns.Labels[corev1.LabelMetadataName] == ns.Name {
		return ns
	}
	c := ns.DeepCopy()
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	c.Labels[corev1.LabelMetadataName] = ns.Name
	return c
}

// parseNamespaceLabels reads --namespace-labels values:
// NAMESPACE=KEY=VALUE[,KEY=VALUE...] ("NAMESPACE=" for a namespace
// without labels).
func parseNamespaceLabels(vals []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, v := range vals {
		ns, rest, ok := strings.Cut(v, "=")
		if !ok || ns == "" {
			return nil, fmt.Errorf("--namespace-labels %q: want NAMESPACE=KEY=VALUE[,KEY=VALUE...]", v)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-labels %q: namespace %q: %s", v, ns, errs[0])
		}
		if _, dup := out[ns]; dup {
			return nil, fmt.Errorf("--namespace-labels: namespace %q given twice", ns)
		}
		labels := map[string]string{}
		if rest != "" {
			for _, kv := range strings.Split(rest, ",") {
				k, val, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("--namespace-labels %q: %q is not KEY=VALUE", v, kv)
				}
				if errs := validation.IsQualifiedName(k); len(errs) > 0 {
					return nil, fmt.Errorf("--namespace-labels %q: label key %q: %s", v, k, errs[0])
				}
				if errs := validation.IsValidLabelValue(val); len(errs) > 0 {
					return nil, fmt.Errorf("--namespace-labels %q: label %s value %q: %s", v, k, val, errs[0])
				}
				labels[k] = val
			}
		}
		out[ns] = labels
	}
	return out, nil
}

// chainParams asks each ParamSource in turn: the first that has the
// ConfigMap answers (the manifests' before the cluster's).
type chainParams []policy.ParamSource

func (c chainParams) ConfigMapData(ctx context.Context, name string) (map[string]string, bool, error) {
	for _, p := range c {
		d, found, err := p.ConfigMapData(ctx, name)
		if err != nil || found {
			return d, found, err
		}
	}
	return nil, false, nil
}

// chainObjects asks each ObjectParamSource in turn: the first that finds
// objects answers (the manifests' before the cluster's).
type chainObjects []policy.ObjectParamSource

func (c chainObjects) ParamObjects(ctx context.Context, q *policy.ParamQuery) ([]policy.ParamObject, error) {
	for _, p := range c {
		objs, err := p.ParamObjects(ctx, q)
		if err != nil || len(objs) > 0 {
			return objs, err
		}
	}
	return nil, nil
}

// manifestObject is a manifest object in the JSON-shaped form CEL's params
// take (as the API server would serve it).
func manifestObject(o *posture.Object) (map[string]any, error) {
	if o.Unstructured != nil {
		return o.Unstructured.Object, nil
	}
	raw := o.Raw
	if raw == nil && o.Typed != nil {
		var err error
		if raw, err = json.Marshal(o.Typed); err != nil {
			return nil, err
		}
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("read as params: %w", err)
	}
	return m, nil
}
