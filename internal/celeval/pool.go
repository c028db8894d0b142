package celeval

import (
	"fmt"
	"sync"
)

// JSONPool decodes JSON like FromJSON, recycling the object maps of
// documents released after use. The webhook converts every object it
// judges for the custom rules; its maps were a fifth of a review's
// allocations (~12 KB of a 57 KB review), and at 500 reviews/s allocations
// set how often the collector runs, whose mark phases are where the
// webhook's latency tail grew. A cleared Go map keeps its storage, so a
// recycled tree of the same shape allocates (almost) nothing.
//
// The zero value is ready; a JSONPool must not be copied after first use.
type JSONPool struct{ p sync.Pool }

// jsonArena is the maps of one decoded document (used), the cleared maps
// ready for the next one (free), and the storage of its arrays.
type jsonArena struct {
	used, free []map[string]any
	// slab is where the document's arrays are carved from; cleared and
	// reused on release like the maps.
	slab []any
	need int // elements of the arrays of the document being read
	// stack is the parser's scratch for array elements.
	stack []any
	// strs are interned string values, boxed (see strValue).
	strs map[string]any
}

// maxSlab bounds the elements of a recycled array slab.
const maxSlab = 16 << 10

// Pooling is skipped for documents whose maps would keep too much memory
// in the pool (a 3 MiB object may hold tens of thousands of maps).
const (
	maxPooledJSONBytes = 256 << 10
	maxPooledMaps      = 4096
)

// FromJSON decodes raw as the package's FromJSON does. release returns
// the document's maps and arrays to the pool: the caller must call it
// once and then not touch the value or anything reached through it
// (strings and numbers taken out of it stay valid: only maps and arrays
// are reused; string values may be shared with later documents, which
// is harmless as strings are immutable).
func (jp *JSONPool) FromJSON(raw []byte) (v any, release func(), err error) {
	return jp.FromJSONFields(raw, nil)
}

// FromJSONFields is FromJSON building, of a top-level object, only the
// fields named in fields (all of them when fields is nil): the value of a
// variable the expressions read only through those fields (see
// Program.TopFields). The others are read and checked as FromJSON checks
// them, so a document fails alike, but nothing is built for them: the
// webhook's custom rules read an object's metadata, not the pod spec that
// is most of it.
func (jp *JSONPool) FromJSONFields(raw []byte, fields map[string]bool) (v any, release func(), err error) {
	if len(raw) > maxPooledJSONBytes {
		v, err = FromJSON(raw)
		return v, func() {}, err
	}
	a, _ := jp.p.Get().(*jsonArena)
	if a == nil {
		a = &jsonArena{}
	}
	p := jsonParser{s: raw, arena: a, stack: a.stack[:0], top: fields}
	p.space()
	v, err = p.value(0)
	if cap(p.stack) <= maxSlab {
		a.stack = p.stack[:0]
	}
	released := false
	release = func() {
		if released { // a second release would hand the same maps out twice
			return
		}
		released = true
		if len(a.used)+len(a.free) > maxPooledMaps {
			return // let the collector have this one
		}
		for _, m := range a.used {
			clear(m)
		}
		clear(a.slab)
		a.slab = a.slab[:0]
		if a.need > cap(a.slab) && a.need <= maxSlab {
			a.slab = make([]any, 0, a.need)
		}
		a.need = 0
		a.free = append(a.free, a.used...)
		clear(a.used) // no stale references from the used list
		a.used = a.used[:0]
		jp.p.Put(a)
	}
	if err != nil {
		release()
		return nil, func() {}, fmt.Errorf("decode JSON for CEL: %w", err)
	}
	return v, release, nil
}
