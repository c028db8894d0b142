package store

import (
	"sort"
	"sync"
)

// exportLogWindow keeps the export log rows the delivery workers read
// last, so that the exports after the first read a batch from memory
// instead of the database: every export reads the same rows (each applies
// its own filter), and reading them — the query, and on PostgreSQL the
// server sending each payload again — was the largest cost of a delivery
// after decoding.
//
// The window is a run of consecutive log rows (from, last]: every row of
// the log in that range, in (xid, seq) order, as one read returned them.
// Such a run never changes once read, which is what makes serving it from
// memory exact: on PostgreSQL a read only returns rows of transactions
// below its snapshot's xmin, all of them ended, so no row can later
// appear inside the run (migration 0009); on SQLite sequence order is
// commit order (one writer), so a row committed later has a higher
// sequence number than any row already read; the log is append-only
// (records are put back as new rows), and PurgeExportLog, the only delete,
// trims the window too.
//
// The rows are never modified after they are added (readers keep slices
// of them without the lock); the window is bounded by logWindowRows.
type exportLogWindow struct {
	mu   sync.Mutex
	from logPos // exclusive start
	rows []logRow
	// reading are the database reads in flight, by the position they
	// read after (see claim).
	reading map[logPos]chan struct{}
}

// claim registers a database read of the rows after from. If another
// read of them is in flight, it returns a channel closed when that read is
// done (its rows are then in the window); otherwise release, to call once
// the read's rows are added.
func (w *exportLogWindow) claim(from logPos) (wait <-chan struct{}, release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.reading[from]; ok {
		return ch, nil
	}
	if w.reading == nil {
		w.reading = map[logPos]chan struct{}{}
	}
	ch := make(chan struct{})
	w.reading[from] = ch
	return nil, func() {
		w.mu.Lock()
		delete(w.reading, from)
		w.mu.Unlock()
		close(ch)
	}
}

// logWindowRows bounds the window: several batches of the largest size,
// so that exports a few batches apart still share it.
const logWindowRows = 16384

// after returns up to scan rows of the window after cursor c, or nil when
// the window does not hold c.
func (w *exportLogWindow) after(c logPos, scan int) []logRow {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.rows) == 0 || c.less(w.from) || !c.less(w.rows[len(w.rows)-1].pos) {
		return nil
	}
	i := sort.Search(len(w.rows), func(i int) bool { return c.less(w.rows[i].pos) })
	return w.rows[i:min(len(w.rows), i+scan):min(len(w.rows), i+scan)]
}

// add records rows read from the database after cursor from: every log
// row in (from, last row]. A run that continues or overlaps the window
// extends it; one further on replaces it; one behind it is dropped.
func (w *exportLogWindow) add(from logPos, rows []logRow) {
	if len(rows) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	end := rows[len(rows)-1].pos
	switch {
	case len(w.rows) > 0 && from == w.rows[len(w.rows)-1].pos:
		// Appending never writes over rows a reader holds (they end at the
		// old length).
		if cap(w.rows)-len(w.rows) < len(rows) {
			w.rows = windowArray(w.rows, len(rows))
		}
		w.rows = append(w.rows, rows...)
	case len(w.rows) > 0 && !end.less(w.rows[len(w.rows)-1].pos) && !from.less(w.from) && !w.rows[len(w.rows)-1].pos.less(from):
		// Overlaps and goes further: keep the window up to from, then
		// the new rows (a new array, for the same reason).
		i := sort.Search(len(w.rows), func(i int) bool { return from.less(w.rows[i].pos) })
		w.rows = append(windowArray(w.rows[:i], len(rows)), rows...)
	case len(w.rows) == 0 || w.rows[len(w.rows)-1].pos.less(end):
		w.from, w.rows = from, append(windowArray(nil, len(rows)), rows...)
	default:
		return
	}
	if extra := len(w.rows) - logWindowRows; extra > 0 {
		w.from, w.rows = w.rows[extra-1].pos, w.rows[extra:]
	}
}

// windowArray copies rows into a new array with room for more rows and
// then a window's worth: the window slides forward by dropping its head,
// so an array with only append's usual headroom was copied again every
// few batches (2 MiB each time).
func windowArray(rows []logRow, more int) []logRow {
	a := make([]logRow, len(rows), len(rows)+more+logWindowRows)
	copy(a, rows)
	return a
}

// purge drops the rows at or before p (all with all), as PurgeExportLog
// deletes them.
func (w *exportLogWindow) purge(p logPos, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if all {
		w.from, w.rows = logPos{}, nil
		return
	}
	i := sort.Search(len(w.rows), func(i int) bool { return p.less(w.rows[i].pos) })
	if i > 0 {
		w.from, w.rows = w.rows[i-1].pos, w.rows[i:]
	}
}
