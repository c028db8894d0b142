package enrich

import (
	"container/list"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// answerCache is the resolvers' own bounded LRU of answers per container id
// — a value or an error (a miss is remembered too, with its own, shorter
// expiry) — shared by Runtime and CRI so each container costs one lookup
// per TTL however many events it makes. It is separate from the Enricher's
// cache: a resolver is also used on its own (ScriptDrift asks Runtime for a
// container's init pid).
type answerCache[V any] struct {
	size        int
	ttl, negTTL time.Duration // answers; misses (ErrNotFound) and errors
	now         func() time.Time

	lookups, hits, notFound, errs atomic.Uint64

	mu   sync.Mutex
	lru  *list.List // of *answer[V], most recent first
	byID map[string]*list.Element
}

type answer[V any] struct {
	id      string
	v       V
	err     error
	expires time.Time
}

// cacheDefaults fills the cache settings Runtime and CRI share: 4096
// containers, answers for 1 min, misses for 2 s.
func cacheDefaults(size *int, ttl, negTTL *time.Duration, now *func() time.Time) {
	if *size <= 0 {
		*size = 4096
	}
	if *ttl <= 0 {
		*ttl = time.Minute
	}
	if *negTTL <= 0 {
		*negTTL = 2 * time.Second
	}
	if *now == nil {
		*now = time.Now
	}
}

func newAnswerCache[V any](size int, ttl, negTTL time.Duration, now func() time.Time) *answerCache[V] {
	return &answerCache[V]{size: size, ttl: ttl, negTTL: negTTL, now: now, lru: list.New(), byID: map[string]*list.Element{}}
}

// resolve answers id from the cache, or from lookup (then cached: an answer
// for ttl, a miss or an error for negTTL), counting lookups, hits, misses
// and errors.
func (c *answerCache[V]) resolve(id string, lookup func() (V, error)) (V, error) {
	now := c.now()
	c.lookups.Add(1)
	if v, err, ok := c.get(id, now); ok {
		c.hits.Add(1)
		return v, err
	}
	v, err := lookup()
	ttl := c.ttl
	switch {
	case errors.Is(err, ErrNotFound):
		c.notFound.Add(1)
		ttl = c.negTTL
	case err != nil:
		c.errs.Add(1)
		ttl = c.negTTL
	}
	c.put(id, v, err, now.Add(ttl))
	return v, err
}

// get returns the unexpired answer for id.
func (c *answerCache[V]) get(id string, now time.Time) (v V, err error, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, found := c.byID[id]
	if !found {
		return v, nil, false
	}
	a := el.Value.(*answer[V])
	if !now.Before(a.expires) {
		return v, nil, false
	}
	c.lru.MoveToFront(el)
	return a.v, a.err, true
}

// put remembers an answer until expires, evicting the least recently used
// beyond the size.
func (c *answerCache[V]) put(id string, v V, err error, expires time.Time) {
	a := &answer[V]{id: id, v: v, err: err, expires: expires}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		el.Value = a
		c.lru.MoveToFront(el)
		return
	}
	c.byID[id] = c.lru.PushFront(a)
	for c.lru.Len() > c.size {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.byID, last.Value.(*answer[V]).id)
	}
}

func (c *answerCache[V]) forget(id string) {
	c.mu.Lock()
	if el, ok := c.byID[id]; ok {
		c.lru.Remove(el)
		delete(c.byID, id)
	}
	c.mu.Unlock()
}

func (c *answerCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byID)
}
