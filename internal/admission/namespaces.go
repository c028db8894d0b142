package admission

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
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
