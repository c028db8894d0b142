package enrich

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// Info is what enrichment knows about a container.
type Info struct {
	ContainerName string
	Pod           string
	Namespace     string
	Image         string   // reference as the pod spec / runtime reports it
	ImageDigest   string   // sha256:...
	Labels        []string // "key:value", as Falco renders k8s.pod.labels
	Workload      string   // Kind/name of the owning workload, e.g. Deployment/web
	Privileged    bool
	PodUID        string // metadata.uid of the pod
	// Sandbox: the container is the pod's sandbox ("pause") container, not
	// one of the pod spec's; its events are the pod infrastructure's.
	Sandbox bool
}

// ErrNotFound is returned by a resolver that does not know the container.
var ErrNotFound = errors.New("container not found")

// Resolver answers a container id.
type Resolver interface {
	Name() string
	Resolve(ctx context.Context, containerID string) (*Info, error)
}

// Local is a Resolver whose answer is an in-memory lookup, cheap enough to
// ask inline on the event path.
type Local interface {
	Peek(containerID string) (*Info, bool)
}

// Config configures an Enricher.
type Config struct {
	Resolvers []Resolver
	TTL       time.Duration // positive answers (default 5m)
	NegTTL    time.Duration // "unknown" answers, before asking again (default 5s)
	QueueSize int           // async lookups waiting (default 1024)
	Workers   int           // async lookup goroutines (default 2)
	Timeout   time.Duration // per async lookup (default 2s)
	// OnAttributed is called (from a lookup goroutine or the event path)
	// once per container id when it is first attributed to a pod, e.g. to
	// switch on drift prevention for it.
	OnAttributed func(containerID string, info *Info)
	Log          *slog.Logger
	Now          func() time.Time
}

type entry struct {
	info    *Info // nil: not known (yet)
	expires int64
	pending bool
}

// Stats are the enricher's counters.
type Stats struct {
	Hits, Misses, LocalHits, Lookups, LookupErrors, QueueDrops uint64
	Cached                                                     int
}

// Enricher fills rules.Event pod/namespace/image fields from its cache.
type Enricher struct {
	cfg   Config
	mu    sync.RWMutex
	cache map[string]*entry
	queue chan string
	local []Local

	hits, misses, localHits, lookups, lookupErrs, drops atomic.Uint64
	// clock is a coarse "now" (unix ns) kept by Run, so the event path does
	// not read the clock per event; 0 when Run is not running.
	clock atomic.Int64
}

func (e *Enricher) now() int64 {
	if c := e.clock.Load(); c != 0 {
		return c
	}
	return e.cfg.Now().UnixNano()
}

// MaxCached bounds the cache; beyond it expired entries are swept, and if
// none are expired new containers are not cached (still enriched inline).
const MaxCached = 65536

// New returns an Enricher; call Run to start the async lookups.
func New(cfg Config) *Enricher {
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.NegTTL <= 0 {
		cfg.NegTTL = 5 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Enricher{cfg: cfg, cache: map[string]*entry{}, queue: make(chan string, cfg.QueueSize)}
	for _, r := range cfg.Resolvers {
		if l, ok := r.(Local); ok {
			e.local = append(e.local, l)
		}
	}
	return e
}

// Run serves async lookups until ctx ends.
func (e *Enricher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			e.clock.Store(e.cfg.Now().UnixNano())
			select {
			case <-ctx.Done():
				e.clock.Store(0)
				return
			case <-t.C:
			}
		}
	}()
	for range e.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-e.queue:
					e.lookup(ctx, id)
				}
			}
		}()
	}
	wg.Wait()
}

func (e *Enricher) lookup(ctx context.Context, id string) {
	e.lookups.Add(1)
	// Every resolver is asked and the answers merged in resolver order:
	// an earlier resolver's fields win (the runtime state names the image
	// and container as the runtime started it; the pod informer adds the
	// workload, labels and digest).
	var info *Info
	for _, r := range e.cfg.Resolvers {
		if _, ok := r.(Local); ok {
			if i, ok := r.(Local).Peek(id); ok {
				info = Merge(info, i)
			}
			continue
		}
		c, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
		i, err := r.Resolve(c, id)
		cancel()
		if err == nil && i != nil {
			info = Merge(info, i)
			continue
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			e.lookupErrs.Add(1)
			e.cfg.Log.Debug("container lookup", "resolver", r.Name(), "container", id, "err", err)
		}
	}
	e.store(id, info)
}

func (e *Enricher) store(id string, info *Info) {
	now := e.cfg.Now().UnixNano()
	ttl := e.cfg.NegTTL
	if info != nil {
		ttl = e.cfg.TTL
	}
	e.mu.Lock()
	prev := e.cache[id]
	first := info != nil && (prev == nil || prev.info == nil)
	if len(e.cache) >= MaxCached && prev == nil {
		e.sweepLocked(now)
	}
	if prev != nil || len(e.cache) < MaxCached {
		e.cache[id] = &entry{info: info, expires: now + int64(ttl)}
	}
	e.mu.Unlock()
	if first && e.cfg.OnAttributed != nil {
		e.cfg.OnAttributed(id, info)
	}
}

func (e *Enricher) sweepLocked(now int64) {
	for k, v := range e.cache {
		if v.expires < now && !v.pending {
			delete(e.cache, k)
		}
	}
}

// Invalidate forgets what is cached for a container, e.g. when the pod
// informer saw its pod change; the next event asks again.
func (e *Enricher) Invalidate(id string) {
	e.mu.Lock()
	delete(e.cache, id)
	e.mu.Unlock()
}

// Enrich fills ev's container and pod fields from the cache and returns the
// Info used (nil when unknown). Host events ("host" or an empty id) are
// marked host and not looked up. On a miss it asks the local resolvers
// inline and queues an async lookup for the others; it never waits for one.
func (e *Enricher) Enrich(ev *rules.Event) *Info {
	id := ev.Container.ID
	if id == "" || id == "host" {
		ev.Container.ID = "host"
		return nil
	}
	now := e.now()
	e.mu.RLock()
	ent := e.cache[id]
	var info *Info
	fresh := false
	if ent != nil {
		info = ent.info
		fresh = ent.pending || ent.expires > now
	}
	e.mu.RUnlock()
	if ent != nil && fresh {
		if info != nil {
			e.hits.Add(1)
			apply(ev, info)
		}
		return info
	}
	e.misses.Add(1)
	var local *Info
	for _, l := range e.local {
		if i, ok := l.Peek(id); ok {
			local = Merge(local, i)
		}
	}
	if len(e.local) == len(e.cfg.Resolvers) {
		if local != nil {
			e.localHits.Add(1)
			e.store(id, local)
			apply(ev, local)
			return local
		}
		// Nothing to ask asynchronously: remember the miss for NegTTL.
		e.store(id, nil)
		if info != nil { // stale positive answer: better than nothing
			apply(ev, info)
		}
		return info
	}
	if local != nil {
		// The local answer is used now; the async lookup below merges the
		// other resolvers' answers into it.
		e.localHits.Add(1)
		e.store(id, local) // attributed now (OnAttributed), refined below
		info = local
	}
	e.mu.Lock()
	if cur := e.cache[id]; cur == nil || !cur.pending {
		if cur == nil && len(e.cache) >= MaxCached {
			e.sweepLocked(now)
		}
		if len(e.cache) < MaxCached || cur != nil {
			select {
			case e.queue <- id:
				e.cache[id] = &entry{info: info, pending: true}
			default:
				e.drops.Add(1)
			}
		}
	}
	e.mu.Unlock()
	if info != nil {
		apply(ev, info)
	}
	return info
}

func apply(ev *rules.Event, i *Info) {
	if i.ContainerName != "" {
		ev.Container.Name = i.ContainerName
	}
	if i.Image != "" {
		ev.Container.Image = i.Image
		ev.Container.ImageRepository = Repository(i.Image)
	}
	if i.Privileged {
		ev.Container.Privileged = true
	}
	ev.K8s.Namespace = i.Namespace
	ev.K8s.PodName = i.Pod
	ev.K8s.PodLabels = i.Labels
}

// Repository strips the tag and digest from an image reference
// ("docker.io/library/nginx:1.25@sha256:..." → "docker.io/library/nginx").
func Repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
		ref = ref[:i]
	}
	return ref
}

// Stats returns the counters.
func (e *Enricher) Stats() Stats {
	e.mu.RLock()
	n := len(e.cache)
	e.mu.RUnlock()
	return Stats{Hits: e.hits.Load(), Misses: e.misses.Load(), LocalHits: e.localHits.Load(), Lookups: e.lookups.Load(),
		LookupErrors: e.lookupErrs.Load(), QueueDrops: e.drops.Load(), Cached: n}
}
