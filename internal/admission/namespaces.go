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

// ClientNamespaces reads namespaces through the API server, each cached for
// a TTL (labels change rarely; a webhook must not add an API call to every
// admission).
type ClientNamespaces struct {
	client kubernetes.Interface
	ttl    time.Duration
	mu     sync.Mutex
	cache  map[string]nsEntry
}

type nsEntry struct {
	ns  *corev1.Namespace
	at  time.Time
	err error
}

// NewClientNamespaces builds the getter (ttl default 30s).
func NewClientNamespaces(c kubernetes.Interface, ttl time.Duration) *ClientNamespaces {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &ClientNamespaces{client: c, ttl: ttl, cache: map[string]nsEntry{}}
}

// Namespace implements NamespaceGetter.
func (g *ClientNamespaces) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	g.mu.Lock()
	e, ok := g.cache[name]
	g.mu.Unlock()
	if ok && time.Since(e.at) < g.ttl {
		return e.ns, e.err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ns, err := g.client.CoreV1().Namespaces().Get(cctx, name, metav1.GetOptions{})
	if err != nil {
		err = fmt.Errorf("get namespace %s: %w", name, err)
	}
	g.mu.Lock()
	if len(g.cache) > 10000 {
		clear(g.cache)
	}
	g.cache[name] = nsEntry{ns: ns, at: time.Now(), err: err}
	g.mu.Unlock()
	return ns, err
}

// ClientConfigMaps reads the ConfigMaps policies name in spec.paramRef, in
// one namespace (Bulwark's own: the webhook is granted nothing wider),
// each cached for a TTL like namespaces. A ConfigMap that does not exist
// is an answer (found false), cached as well; other errors are not
// cached beyond the TTL either.
type ClientConfigMaps struct {
	client    kubernetes.Interface
	namespace string
	ttl       time.Duration
	mu        sync.Mutex
	cache     map[string]cmEntry
}

type cmEntry struct {
	data  map[string]string
	found bool
	at    time.Time
	err   error
}

// NewClientConfigMaps builds the source for ConfigMaps in namespace (ttl
// default 30s).
func NewClientConfigMaps(c kubernetes.Interface, namespace string, ttl time.Duration) *ClientConfigMaps {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &ClientConfigMaps{client: c, namespace: namespace, ttl: ttl, cache: map[string]cmEntry{}}
}

// ConfigMapData implements policy.ParamSource.
func (g *ClientConfigMaps) ConfigMapData(ctx context.Context, name string) (map[string]string, bool, error) {
	g.mu.Lock()
	e, ok := g.cache[name]
	g.mu.Unlock()
	if ok && time.Since(e.at) < g.ttl {
		return e.data, e.found, e.err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cm, err := g.client.CoreV1().ConfigMaps(g.namespace).Get(cctx, name, metav1.GetOptions{})
	e = cmEntry{at: time.Now()}
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		e.err = fmt.Errorf("get configmap %s/%s: %w", g.namespace, name, err)
	default:
		e.data, e.found = cm.Data, true
	}
	g.mu.Lock()
	if len(g.cache) > 1000 {
		clear(g.cache)
	}
	g.cache[name] = e
	g.mu.Unlock()
	return e.data, e.found, e.err
}
