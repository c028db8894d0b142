package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// DispatcherOptions tune the delivery workers.
type DispatcherOptions struct {
	// Worker names this process in leases (default host:pid).
	Worker string
	// Poll is how often an idle export looks for new records (default 1s;
	// Nudge wakes them sooner).
	Poll time.Duration
	// Refresh is how often the export list is re-read (default 5s).
	Refresh time.Duration
	// LeaseFor is the least lease of a batch (default 1m; always at least
	// the export's timeout plus 5s, so a slow delivery is not taken over).
	LeaseFor time.Duration
	// DeadRetention is how long dead letters are kept (default 30 days);
	// older ones are purged hourly.
	DeadRetention time.Duration
	// DisabledRetention is how long a disabled export holds back the
	// purge of the export log (default 7 days): the records every enabled
	// export has settled are purged at every Refresh, so a switched-off,
	// forgotten export cannot make the log grow without bound.
	DisabledRetention time.Duration
	// Deps are passed to New.
	Deps Deps
	// Build overrides New (tests).
	Build func(*Config, Deps) (Exporter, error)
}

// Dispatcher runs one delivery worker per enabled export.
type Dispatcher struct {
	st   *store.Store
	opts DispatcherOptions
	log  *slog.Logger

	mu      sync.Mutex
	workers map[int64]*worker
	wake    chan struct{}
	decoded *recordCache
}

// recordCache keeps the records the workers decoded last, by log
// sequence number: every export reads the same log, so with several
// exports a record is decoded once instead of once per export (decoding
// was the largest cost of delivery). Records are read-only to exporters.
//
// It is direct-mapped (a record's slot is its sequence number modulo the
// size: the exports read runs of consecutive sequence numbers, so a
// record only leaves when one recordCacheSize further on comes in) and
// holds the decoded records by value in one array allocated once: no map
// hashing, no allocation per record. A record being decoded is marked
// with its decoder's flight, and another export that wants it meanwhile
// waits for that flight instead of decoding it too: the workers poll
// together and lease the same rows at nearly the same moment, so before
// this most records were decoded twice or three times.
type recordCache struct {
	mu    sync.Mutex
	slots []cacheSlot // recordCacheSize, allocated on first use
	// decodes counts the records decoded (tests: once per record).
	decodes atomic.Int64
}

type cacheSlot struct {
	used bool
	seq  int64
	// fl is set while the record is being decoded by fl's owner.
	fl  *decodeFlight
	rec Record
	err error
}

// decodeFlight is one worker's decoding of the records it claimed;
// done is closed when their slots are filled.
type decodeFlight struct{ done chan struct{} }

// recordCacheSize bounds the cache: a few batches of the largest size for
// each of several exports reading near the same place in the log.
const recordCacheSize = 16384

func newRecordCache() *recordCache { return &recordCache{} }

func (c *recordCache) slot(seq int64) *cacheSlot {
	return &c.slots[uint64(seq)%recordCacheSize]
}

// decodeScratch are a worker's buffers for decodeAll (reused across
// batches).
type decodeScratch struct {
	mine, wait, own []int
	flights         []*decodeFlight
}

// decodeAll decodes leased[i] into recs[i] (errs[i] when it cannot):
// from the cache, or by this call (and cached), or, when another worker is
// decoding it right now, by waiting for that worker.
func (c *recordCache) decodeAll(leased []store.OutboxRecord, recs []Record, errs []error, sc *decodeScratch) {
	sc.mine, sc.wait, sc.own, sc.flights = sc.mine[:0], sc.wait[:0], sc.own[:0], sc.flights[:0]
	var fl *decodeFlight
	c.mu.Lock()
	if c.slots == nil {
		c.slots = make([]cacheSlot, recordCacheSize)
	}
	for i := range leased {
		seq := leased[i].ID
		s := c.slot(seq)
		switch {
		case s.used && s.seq == seq && s.fl == nil:
			recs[i], errs[i] = s.rec, s.err
		case s.used && s.seq == seq:
			sc.wait = append(sc.wait, i)
			if !slices.Contains(sc.flights, s.fl) {
				sc.flights = append(sc.flights, s.fl)
			}
		case s.used && s.fl != nil:
			// The slot is another record's, being decoded: decode this
			// one without caching it.
			sc.own = append(sc.own, i)
		default:
			if fl == nil {
				fl = &decodeFlight{done: make(chan struct{})}
			}
			*s = cacheSlot{used: true, seq: seq, fl: fl}
			sc.mine = append(sc.mine, i)
		}
	}
	c.mu.Unlock()
	c.decodes.Add(int64(len(sc.mine) + len(sc.own)))
	for _, i := range sc.mine {
		recs[i], errs[i] = decodeRecord(leased[i].Payload)
	}
	if fl != nil {
		c.mu.Lock()
		for _, i := range sc.mine {
			if s := c.slot(leased[i].ID); s.fl == fl {
				s.rec, s.err, s.fl = recs[i], errs[i], nil
			}
		}
		c.mu.Unlock()
		close(fl.done)
	}
	for _, i := range sc.own {
		recs[i], errs[i] = decodeRecord(leased[i].Payload)
	}
	if len(sc.wait) == 0 {
		return
	}
	// A flight's owner decodes before it waits for anyone: no cycle.
	for _, f := range sc.flights {
		<-f.done
	}
	c.mu.Lock()
	sc.own = sc.own[:0]
	for _, i := range sc.wait {
		if s := c.slot(leased[i].ID); s.used && s.seq == leased[i].ID && s.fl == nil {
			recs[i], errs[i] = s.rec, s.err
		} else {
			sc.own = append(sc.own, i) // replaced meanwhile (cannot happen within a window's distance)
		}
	}
	c.mu.Unlock()
	c.decodes.Add(int64(len(sc.own)))
	for _, i := range sc.own {
		recs[i], errs[i] = decodeRecord(leased[i].Payload)
	}
}

// NewDispatcher prepares the delivery workers; Run runs them.
func NewDispatcher(st *store.Store, opts DispatcherOptions) *Dispatcher {
	if opts.Worker == "" {
		h, _ := os.Hostname()
		opts.Worker = h + ":" + strconv.Itoa(os.Getpid())
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.LeaseFor <= 0 {
		opts.LeaseFor = time.Minute
	}
	if opts.Build == nil {
		opts.Build = New
	}
	if opts.DeadRetention <= 0 {
		opts.DeadRetention = 30 * 24 * time.Hour
	}
	if opts.DisabledRetention <= 0 {
		opts.DisabledRetention = 7 * 24 * time.Hour
	}
	log := opts.Deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{st: st, opts: opts, log: log, workers: map[int64]*worker{}, wake: make(chan struct{}, 1),
		decoded: newRecordCache()}
}

// Nudge tells idle workers that records were queued.
func (d *Dispatcher) Nudge() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, w := range d.workers {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// worker delivers one export's records.
type worker struct {
	id      int64
	version int64
	cfg     *Config
	exp     Exporter
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
	// next is the batch leased with the last outcome (the lease kept).
	next      []store.OutboxRecord
	nextLease store.OutboxLease
	bufs      deliverBufs
	// idle: the last lease found nothing due; the next poll first asks
	// whether there is anything (reads) before leasing (writes).
	idle bool
}

// deliverBufs are a worker's buffers for deliverBatch, reused from batch
// to batch: exporters do not keep the records after Deliver returns, and
// the outcome is recorded before the next batch is decoded.
type deliverBufs struct {
	recs []Record
	errs []error
	ids  []int64
	sc   decodeScratch
}

// Run delivers until ctx ends, then stops the workers (a batch in flight
// is given back to the queue without counting an attempt).
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.stopAll()
	t := time.NewTicker(d.opts.Refresh)
	defer t.Stop()
	var lastPurge, lastLogPurge time.Time
	for {
		if err := d.refresh(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("export: read the export list", "err", err)
		}
		if time.Since(lastLogPurge) >= d.opts.Refresh {
			lastLogPurge = time.Now()
			if _, err := d.st.PurgeExportLog(ctx, d.opts.DisabledRetention); err != nil && ctx.Err() == nil {
				d.log.Warn("export: purge the export log", "err", err)
			}
		}
		if time.Since(lastPurge) > time.Hour {
			lastPurge = time.Now()
			if n, err := d.st.PurgeDeadExports(ctx, time.Now().Add(-d.opts.DeadRetention)); err != nil && ctx.Err() == nil {
				d.log.Warn("export: purge old dead letters", "err", err)
			} else if n > 0 {
				d.log.Info("export: purged old dead letters", "count", n)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// refresh starts workers for new or changed exports and stops those of
// removed or disabled ones.
func (d *Dispatcher) refresh(ctx context.Context) error {
	exps, err := d.st.ListExportsForDelivery(ctx)
	if err != nil {
		return err
	}
	seen := map[int64]bool{}
	for i := range exps {
		e := &exps[i]
		seen[e.ID] = true
		d.mu.Lock()
		w := d.workers[e.ID]
		d.mu.Unlock()
		if w != nil && w.version == e.Version {
			continue
		}
		if w != nil {
			d.stopWorker(w)
		}
		cfg, err := FromStore(e)
		if err == nil {
			err = cfg.Normalize()
		}
		var exp Exporter
		if err == nil {
			exp, err = d.opts.Build(cfg, d.opts.Deps)
		}
		if err != nil {
			d.log.Error("export: cannot build exporter; its records wait", "export", e.Name, "err", err)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w = &worker{id: e.ID, version: e.Version, cfg: cfg, exp: exp, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
		d.mu.Lock()
		d.workers[e.ID] = w
		d.mu.Unlock()
		go d.runWorker(wctx, w)
	}
	d.mu.Lock()
	var gone []*worker
	for id, w := range d.workers {
		if !seen[id] {
			gone = append(gone, w)
		}
	}
	d.mu.Unlock()
	for _, w := range gone {
		d.stopWorker(w)
	}
	return nil
}

func (d *Dispatcher) stopWorker(w *worker) {
	w.stop()
	<-w.done
	if c, ok := w.exp.(io.Closer); ok {
		_ = c.Close()
	}
	d.mu.Lock()
	if d.workers[w.id] == w {
		delete(d.workers, w.id)
	}
	d.mu.Unlock()
}

func (d *Dispatcher) stopAll() {
	d.mu.Lock()
	ws := make([]*worker, 0, len(d.workers))
	for _, w := range d.workers {
		ws = append(ws, w)
	}
	d.mu.Unlock()
	for _, w := range ws {
		d.stopWorker(w)
	}
}

func (d *Dispatcher) runWorker(ctx context.Context, w *worker) {
	defer close(w.done)
	defer func() {
		if w.next != nil {
			// Stopping with a batch leased and not sent: give it back.
			_ = d.st.ReleaseExportBatch(context.WithoutCancel(ctx), w.nextLease)
			w.next = nil
		}
	}()
	leaseFor := max(d.opts.LeaseFor, time.Duration(w.cfg.Timeout)+5*time.Second)
	for ctx.Err() == nil {
		wait, err := d.deliverOnce(ctx, w, leaseFor)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("export: delivery", "export", w.cfg.Name, "err", err)
		}
		if wait <= 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-w.wake:
		}
		t.Stop()
	}
}

// deliverOnce leases and delivers one batch; it returns how long to wait
// before the next (0: go on at once).
func (d *Dispatcher) deliverOnce(ctx context.Context, w *worker, leaseFor time.Duration) (time.Duration, error) {
	recs, lease := w.next, w.nextLease
	w.next = nil
	var err error
	if recs == nil {
		if w.idle {
			if due, work, err := d.st.ExportHasWork(ctx, w.id); err == nil && due && !work {
				return d.opts.Poll, nil // still nothing: no lease taken and given back
			}
		}
		recs, lease, err = d.st.LeaseExportBatch(ctx, w.id, d.opts.Worker, w.cfg.BatchSize, leaseFor)
		if err != nil {
			return d.opts.Poll, err
		}
	}
	w.idle = len(recs) == 0 && lease.Idle
	if len(recs) == 0 {
		// Nothing due, or the export is backing off: look again later.
		if lease.Idle {
			return d.opts.Poll, nil // not backing off
		}
		if e, err := d.st.GetExport(ctx, w.id); err == nil && !e.RetryAt.IsZero() {
			if until := time.Until(e.RetryAt); until > 0 {
				return min(until, d.opts.Poll*10), nil
			}
		}
		return d.opts.Poll, nil
	}
	out := deliverBatch(ctx, w.exp, recs, time.Duration(w.cfg.Timeout), d.decoded, &w.bufs)
	if ctx.Err() != nil && len(out.Done) == 0 {
		// Shutting down mid-delivery: give the batch back unchanged.
		return 0, d.st.ReleaseExportBatch(context.WithoutCancel(ctx), lease)
	}
	out.MaxAge = time.Duration(w.cfg.MaxAge)
	// The outcome is recorded and, when it was all settled, the next batch
	// leased in the same write (the lease kept).
	retryAt, next, nextLease, err := d.st.FinishAndNextExportBatch(context.WithoutCancel(ctx), lease, out, w.cfg.BatchSize, leaseFor)
	if err != nil {
		return d.opts.Poll, err
	}
	if len(next) > 0 {
		w.next, w.nextLease = next, nextLease
	}
	if len(out.Retry) > 0 {
		d.log.Warn("export: delivery failed; retrying after a backoff", "export", w.cfg.Name, "records", len(out.Retry),
			"retry_at", retryAt, "err", out.Err)
		return time.Until(retryAt), nil
	}
	if len(out.Dead) > 0 {
		d.log.Error("export: records refused for good (dead letters)", "export", w.cfg.Name, "records", len(out.Dead), "err", out.Err)
	}
	return 0, nil
}

// DeliverBatch decodes leased records, delivers them within timeout and
// classifies the outcome per record (for the store's FinishExportBatch).
func DeliverBatch(ctx context.Context, exp Exporter, leased []store.OutboxRecord, timeout time.Duration) store.OutboxOutcome {
	return deliverBatch(ctx, exp, leased, timeout, nil, &deliverBufs{})
}

// deliverBatch is DeliverBatch with the dispatcher's record cache (nil:
// none) and a worker's buffers.
func deliverBatch(ctx context.Context, exp Exporter, leased []store.OutboxRecord, timeout time.Duration,
	cache *recordCache, bufs *deliverBufs) store.OutboxOutcome {
	var out store.OutboxOutcome
	n := len(leased)
	if cap(bufs.recs) < n {
		bufs.recs, bufs.errs, bufs.ids = make([]Record, n), make([]error, n), make([]int64, 0, n)
	}
	all, errs := bufs.recs[:n], bufs.errs[:n]
	defer clear(all) // do not hold the batch's payloads until the next one
	if cache != nil {
		cache.decodeAll(leased, all, errs, &bufs.sc)
	} else {
		for i := range leased {
			all[i], errs[i] = decodeRecord(leased[i].Payload)
		}
	}
	// The records that decoded, in order, compacted in place.
	recs, ids := all[:0], bufs.ids[:0]
	for i, l := range leased {
		if errs[i] != nil {
			out.Dead = append(out.Dead, l.ID)
			out.Err = errs[i].Error()
			continue
		}
		all[i].Pos = LogPos{l.XID, l.ID}
		recs = append(recs, all[i])
		ids = append(ids, l.ID)
	}
	clear(errs)
	if len(recs) == 0 {
		return out
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	err := exp.Deliver(dctx, recs)
	cancel()
	if err == nil {
		// The worker's buffer: the outcome is recorded before the next
		// batch reuses it.
		out.Done = ids
		return out
	}
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == len(recs) {
		for i, e := range be.Errs {
			switch {
			case e == nil:
				out.Done = append(out.Done, ids[i])
			case errors.Is(e, ErrPermanent):
				out.Dead = append(out.Dead, ids[i])
				out.Err = cut(e.Error(), 1000)
			default:
				out.Retry = append(out.Retry, ids[i])
				if !errors.Is(e, errNotAttempted) || out.Err == "" {
					out.Err = cut(e.Error(), 1000)
				}
			}
		}
		return out
	}
	out.Err = cut(err.Error(), 1000)
	if errors.Is(err, ErrPermanent) {
		out.Dead = ids
	} else {
		out.Retry = ids
	}
	return out
}

// Test delivers one synthetic record through an export now, without the
// outbox (POST /api/v1/exports/{id}/test): the receiver's answer, or nil.
func Test(ctx context.Context, c *Config, deps Deps) error {
	exp, err := New(c, deps)
	if err != nil {
		return err
	}
	if cl, ok := exp.(io.Closer); ok {
		defer cl.Close()
	}
	r := testRecord(deps)
	dctx, cancel := context.WithTimeout(ctx, time.Duration(c.Timeout))
	defer cancel()
	if err := exp.Deliver(dctx, []Record{r}); err != nil {
		return fmt.Errorf("test delivery to %s: %w", c.Name, err)
	}
	return nil
}
