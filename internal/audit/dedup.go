package audit

import (
	"hash/maphash"
	"sync"
	"time"
)

// dedup remembers recently processed keys for about a window, in bounded
// memory: two generations of maps, the older dropped when the newer is a
// window old or full. A key is thus remembered for between one and two
// windows (or until 2×max newer keys pushed it out). Keys are kept as
// 64-bit seeded hashes (8 bytes each, no allocation per key); a collision —
// about 1 in 10^7 even with a million keys remembered — would skip one
// record as a replay.
type dedup struct {
	mu        sync.Mutex
	window    time.Duration
	max       int
	seed      maphash.Seed
	cur, prev map[uint64]struct{}
	started   time.Time
}

func newDedup(window time.Duration, max int) *dedup {
	return &dedup{window: window, max: max, seed: maphash.MakeSeed(), cur: map[uint64]struct{}{}, prev: map[uint64]struct{}{}}
}

// key hashes the parts of a dedup key.
func (d *dedup) key(parts ...string) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte(0)
	}
	return h.Sum64()
}

func (d *dedup) rotate(now time.Time) {
	if d.started.IsZero() {
		d.started = now
	}
	if now.Sub(d.started) >= 2*d.window {
		d.prev, d.cur, d.started = map[uint64]struct{}{}, map[uint64]struct{}{}, now
		return
	}
	if now.Sub(d.started) >= d.window || len(d.cur) >= d.max {
		d.prev, d.cur, d.started = d.cur, make(map[uint64]struct{}, len(d.cur)), now
	}
}

func (d *dedup) seen(key uint64, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	_, a := d.cur[key]
	_, b := d.prev[key]
	return a || b
}

func (d *dedup) add(key uint64, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(now)
	d.cur[key] = struct{}{}
}
