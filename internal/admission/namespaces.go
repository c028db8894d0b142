package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ttlCache keeps what an API call answered for a name (errors included)
// for a TTL: a webhook must not add an API call to every admission, and
// what it reads (namespace labels, policy parameters) changes rarely. It
// forgets everything when it holds more than max names.
type ttlCache[V any] struct {
	ttl time.Duration
	max int
	mu  sync.Mutex
	m   map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v   V
	err error
	at  time.Time
}

func newTTLCache[V any](ttl time.Duration, max int) *ttlCache[V] {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &ttlCache[V]{ttl: ttl, max: max, m: map[string]ttlEntry[V]{}}
}

// get returns the cached answer for name, or fetch's (with a 2 s timeout),
// cached.
func (c *ttlCache[V]) get(ctx context.Context, name string, fetch func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e.v, e.err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	e.v, e.err = fetch(cctx)
	e.at = time.Now()
	c.mu.Lock()
	if len(c.m) > c.max {
		clear(c.m)
	}
	c.m[name] = e
	c.mu.Unlock()
	return e.v, e.err
}

// ClientNamespaces reads namespaces through the API server, each cached for
// a TTL.
type ClientNamespaces struct {
	client kubernetes.Interface
	cache  *ttlCache[*corev1.Namespace]
}

// NewClientNamespaces builds the getter (ttl default 30s).
func NewClientNamespaces(c kubernetes.Interface, ttl time.Duration) *ClientNamespaces {
	return &ClientNamespaces{client: c, cache: newTTLCache[*corev1.Namespace](ttl, 10000)}
}

// Namespace implements NamespaceGetter.
func (g *ClientNamespaces) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	return g.cache.get(ctx, name, func(ctx context.Context) (*corev1.Namespace, error) {
		ns, err := g.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get namespace %s: %w", name, err)
		}
		return ns, nil
	})
}

// ClientConfigMaps reads the ConfigMaps policies name in spec.paramRef, in
// one namespace (Bulwark's own: the webhook is granted nothing wider),
// each cached for a TTL like namespaces. A ConfigMap that does not exist
// is an answer (found false), cached as well.
type ClientConfigMaps struct {
	client    kubernetes.Interface
	namespace string
	cache     *ttlCache[configMapData]
}

// configMapData is a ConfigMap's data, or found false.
type configMapData struct {
	data  map[string]string
	found bool
}

// NewClientConfigMaps builds the source for ConfigMaps in namespace (ttl
// default 30s).
func NewClientConfigMaps(c kubernetes.Interface, namespace string, ttl time.Duration) *ClientConfigMaps {
	return &ClientConfigMaps{client: c, namespace: namespace, cache: newTTLCache[configMapData](ttl, 1000)}
}

// ConfigMapData implements policy.ParamSource.
func (g *ClientConfigMaps) ConfigMapData(ctx context.Context, name string) (map[string]string, bool, error) {
	d, err := g.cache.get(ctx, name, func(ctx context.Context) (configMapData, error) {
		cm, err := g.client.CoreV1().ConfigMaps(g.namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return configMapData{}, nil
		case err != nil:
			return configMapData{}, fmt.Errorf("get configmap %s/%s: %w", g.namespace, name, err)
		}
		return configMapData{cm.Data, true}, nil
	})
	return d.data, d.found, err
}
