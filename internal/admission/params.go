package admission

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/bulwark-security/bulwark/internal/policy"
)

// MaxParamObjects bounds the objects one paramRef selector may match: a
// webhook must answer in milliseconds, and a selector matching thousands
// of objects is a policy mistake. More → the rule's params cannot be read
// (a violation, in the policy's mode).
const MaxParamObjects = 100

// ClientParamObjects reads the param resources of policies with a
// spec.paramKind through the API server, any kind (mapped to its resource
// by discovery), each answer cached for a TTL like namespaces. The
// webhook's service account needs get (by name) or list (by selector) on
// those resources: Bulwark's manifests grant ConfigMaps in its own
// namespace only.
type ClientParamObjects struct {
	dyn    dynamic.Interface
	mapper meta.ResettableRESTMapper
	cache  *ttlCache[[]policy.ParamObject]
}

// NewClientParamObjects builds the source from a REST config (ttl default
// 30s).
func NewClientParamObjects(cfg *rest.Config, ttl time.Duration) (*ClientParamObjects, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("param resources: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("param resources: %w", err)
	}
	return &ClientParamObjects{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		cache: newTTLCache[[]policy.ParamObject](ttl, 1000)}, nil
}

// ParamObjects implements policy.ObjectParamSource.
func (c *ClientParamObjects) ParamObjects(ctx context.Context, q *policy.ParamQuery) ([]policy.ParamObject, error) {
	return c.cache.get(ctx, q.String(), func(ctx context.Context) ([]policy.ParamObject, error) { return c.fetch(ctx, q) })
}

func (c *ClientParamObjects) fetch(ctx context.Context, q *policy.ParamQuery) ([]policy.ParamObject, error) {
	gv, err := schema.ParseGroupVersion(q.APIVersion)
	if err != nil {
		return nil, err
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: q.Kind}
	m, err := c.mapper.RESTMapping(gk, gv.Version)
	if meta.IsNoMatchError(err) {
		c.mapper.Reset() // a CRD installed since discovery was cached
		m, err = c.mapper.RESTMapping(gk, gv.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("kind %s in %s: %w", q.Kind, q.APIVersion, err)
	}
	var ri dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
	ns := ""
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if ns = q.Namespace; ns == "" {
			ns = q.RequestNamespace
		}
		if ns == "" {
			return nil, errors.New("a namespaced param kind needs paramRef.namespace for a cluster-scoped request")
		}
		ri = c.dyn.Resource(m.Resource).Namespace(ns)
	}
	if q.Name != "" {
		u, err := ri.Get(ctx, q.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []policy.ParamObject{{Namespace: u.GetNamespace(), Name: u.GetName(), Object: u.Object}}, nil
	}
	list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: q.Selector.String(), Limit: MaxParamObjects + 1})
	if err != nil {
		return nil, err
	}
	if len(list.Items) > MaxParamObjects || list.GetContinue() != "" {
		return nil, fmt.Errorf("the selector matches more than %d objects", MaxParamObjects)
	}
	out := make([]policy.ParamObject, len(list.Items))
	for i := range list.Items {
		u := &list.Items[i]
		out[i] = policy.ParamObject{Namespace: u.GetNamespace(), Name: u.GetName(), Object: u.Object}
	}
	return out, nil
}
