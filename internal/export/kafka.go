package export

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaExporter produces each batch in a Kafka transaction with a
// transactional id stable per export ("bulwark-export-<name>"), so records
// are exactly once across central restarts, not only within a producer
// session: a new process initialising the same transactional id fences the
// old producer and aborts its unfinished transaction, and before its first
// batch it reads this export's last committed log position: from the
// offsets its transactions commit for the export's group
// (kafka_position.go), or else by searching every partition back from its
// end (read_committed, in growing windows up to kafkaSearchLimit offsets,
// see recover) for the bulwark-pos header. Records at or before it were
// committed by a process that died before moving the export's cursor: they
// are skipped, not sent twice. When the search stops short (the limit, or
// the export's timeout in the older windows) it warns and delivery is
// at-least-once. The message key is the record's
// fingerprint (repeats of one alert land in one partition, in order); the
// bulwark-id header carries the record id. Consumers must read with
// isolation.level=read_committed to see each record once.
type kafkaExporter struct {
	c    *Config
	deps Deps
	// searchLimit is kafkaSearchLimit (tests lower it).
	searchLimit int64

	// positions is whether each transaction also commits the batch's
	// last position as the offsets of the export's group (see
	// commitPosition; tests turn it off to stand for records written by
	// a version without it).
	positions bool

	mu sync.Mutex
	cl *kgo.Client
	// last is this export's last position committed to the topic, read at
	// the start of the producer session (zero: none found).
	last LogPos
	// implicitGroup: the cluster runs transactions version 2 (KIP-890),
	// where TxnOffsetCommit adds the group to the transaction itself.
	implicitGroup bool
	// topicID is the topic's id, read once per session (TxnOffsetCommit
	// names the topic by id from v6).
	topicID [16]byte
	// noGroup: the principal may not use the export's group; positions
	// are not committed (warned once per session) and recovery searches.
	noGroup bool
}

func newKafka(c *Config, deps Deps) (*kafkaExporter, error) {
	k := &kafkaExporter{c: c, deps: deps, searchLimit: kafkaSearchLimit, positions: true}
	if _, err := k.opts(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *kafkaExporter) opts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.c.Brokers...),
		kgo.ClientID("bulwark-export-" + k.c.Name),
	}
	if k.c.TLS.Enable || k.c.TLS.CAPEM != "" || k.c.TLS.CAFile != "" {
		tc, err := k.c.TLS.config()
		if err != nil {
			return nil, configErr(k.c.Name, "%v", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch k.c.SASL {
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.c.Username, Pass: k.c.Secrets.Password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.c.Username, Pass: k.c.Secrets.Password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.c.Username, Pass: k.c.Secrets.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

func (k *kafkaExporter) Name() string { return k.c.Name }

// producerOpts are the transactional producer's options.
func (k *kafkaExporter) producerOpts() ([]kgo.Opt, error) {
	opts, err := k.opts()
	if err != nil {
		return nil, err
	}
	return append(opts,
		kgo.DefaultProduceTopic(k.c.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(maxBatch*2),
		kgo.TransactionalID("bulwark-export-"+k.c.Name),
		kgo.TransactionTimeout(max(time.Duration(k.c.Timeout)*2, 10*time.Second)),
	), nil
}

// kafkaTailWindow is the first window recovery reads back from each
// partition's end: a few batches plus the transaction markers between
// them, where this export's last committed record is when the topic is
// its own.
const kafkaTailWindow = 4 * maxBatch

// kafkaWindowGrowth is how much larger each window is than the one after
// it, so a partition crowded by other traffic is searched in a handful of
// reads while a partition whose end holds this export's records costs one.
const kafkaWindowGrowth = 4

// kafkaSearchLimit bounds the offsets recovery searches per partition
// (windows of 4,000, 16,000, 64,000, 256,000, then the rest up to this
// bound): a partition whose last million offsets hold no record of this
// export is not read further back, which on a busy shared topic could take
// longer than the export's timeout at every session start. A record of
// this export beyond it is not found: a batch may be sent twice
// (at-least-once; consumers dedupe on bulwark-id).
const kafkaSearchLimit = 1_000_000

// kafkaRecoverParallel is how many partitions recovery reads at once: the
// reads overlap without holding more than this many fetch responses.
const kafkaRecoverParallel = 4

// kafkaFetchBytes bounds one recovery fetch response (the broker still
// returns a first batch larger than it), so recovery holds at most about
// kafkaRecoverParallel times this, whatever it searches.
const kafkaFetchBytes = 1 << 20

// kafkaFetchRetries is how many times one recovery fetch is retried after
// a retriable error (a leader change), within the export's timeout.
const kafkaFetchRetries = 5

// kafkaWindow is a range of offsets [lo, hi).
type kafkaWindow struct{ lo, hi int64 }

// kafkaWindows are the windows recovery reads, newest first, in a
// partition whose log spans offsets [start, end): adjacent, the first
// kafkaTailWindow offsets back from end, each next kafkaWindowGrowth times
// larger, the last clipped at start or at limit offsets back from end.
// capped reports offsets before the last window that are not read.
func kafkaWindows(start, end, limit int64) (ws []kafkaWindow, capped bool) {
	floor := max(start, end-limit)
	size := int64(kafkaTailWindow)
	for hi := end; hi > floor; size *= kafkaWindowGrowth {
		lo := max(hi-size, floor)
		ws = append(ws, kafkaWindow{lo, hi})
		hi = lo
	}
	return ws, floor > start
}

// kafkaPartition is one partition of the export's topic as recovery
// found it.
type kafkaPartition struct {
	id, leader int32
	// start is the log start offset; end is the last stable offset, the
	// end of what a read_committed reader sees.
	start, end int64
}

// kafkaSearch is recovery's search of one partition.
type kafkaSearch struct {
	p       kafkaPartition
	windows []kafkaWindow // not read yet, newest first
	capped  bool          // the search limit leaves older offsets out
	last    LogPos        // this export's largest position found (zero: none)
	// partial reports that last is from a window read only in part (the
	// search stopped inside it).
	partial bool
}

// short reports that the search ended without an answer for the
// partition: neither a window read whole that holds a record of this
// export, nor the partition's start reached.
func (s *kafkaSearch) short() bool {
	found := !s.last.IsZero() && !s.partial
	atStart := len(s.windows) == 0 && !s.capped
	return !found && !atStart
}

// recover finds this export's last committed position on the topic: the
// largest bulwark-pos of its records, read_committed. It reads every
// partition's tail (the first window), then the position committed with the
// records for the export's group (committedPosition), which when present is
// the answer (with the tails). Otherwise each partition is
// read back from its end in growing windows (kafkaWindows) until a window
// holds a record of this export (positions only grow, one producer and
// sequential transactions, so that window has the partition's largest),
// or the partition's start or kafkaSearchLimit is reached; the answer is
// the largest over partitions. Only the position is kept, never the
// records. All of it is bounded by the export's timeout, in two rounds:
// first every partition's tail (the first window), where an error or the
// timeout fails the session start as before; then the older windows of
// the partitions whose tail has none of this export's records, where the
// timeout stops the search short as the limit does, so a topic too large
// to search in time does not stop the export. A search stopped short is
// logged as a warning: records committed before it may be sent again.
func (k *kafkaExporter) recover(ctx context.Context) (LogPos, error) {
	opts, err := k.opts()
	if err != nil {
		return LogPos{}, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return LogPos{}, fmt.Errorf("kafka %s: recovery client: %w", k.c.Name, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(k.c.Timeout))
	defer cancel()
	topicID, parts, err := k.partitions(ctx, cl)
	if err != nil {
		return LogPos{}, fmt.Errorf("kafka %s: read the topic's offsets: %w", k.c.Name, err)
	}
	searches := make([]kafkaSearch, len(parts))
	for i, p := range parts {
		searches[i].p = p
		searches[i].windows, searches[i].capped = kafkaWindows(p.start, p.end, k.searchLimit)
	}
	if err := eachSearch(searches, func(s *kafkaSearch) error { return k.search(ctx, cl, topicID, s, 1) }); err != nil {
		return LogPos{}, fmt.Errorf("kafka %s: read the topic's tail: %w", k.c.Name, err)
	}
	if last, ok := k.committedPosition(ctx, cl, parts); ok {
		// Exact, whatever traffic followed: the older windows are not
		// read. The tails still count (a session that could not commit
		// positions).
		for i := range searches {
			if last.Less(searches[i].last) {
				last = searches[i].last
			}
		}
		return last, nil
	}
	err = eachSearch(searches, func(s *kafkaSearch) error { return k.search(ctx, cl, topicID, s, -1) })
	timedOut := err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)
	if err != nil && !timedOut {
		return LogPos{}, fmt.Errorf("kafka %s: search the topic: %w", k.c.Name, err)
	}
	var last LogPos
	var short []int32
	for i := range searches {
		s := &searches[i]
		if last.Less(s.last) {
			last = s.last
		}
		if s.short() {
			short = append(short, s.p.id)
		}
	}
	if len(short) > 0 {
		k.deps.Logger.Warn("kafka recovery stopped short: older records of this export were not searched for, and a batch committed before a restart may be sent again",
			"export", k.c.Name, "topic", k.c.Topic, "partitions", short, "limit", k.searchLimit,
			"timed_out", timedOut, "recovered", last.String())
	}
	return last, nil
}

// eachSearch runs fn on every search, kafkaRecoverParallel at a time, and
// returns the first error.
func eachSearch(searches []kafkaSearch, fn func(*kafkaSearch) error) error {
	errs := make([]error, len(searches))
	sem := make(chan struct{}, kafkaRecoverParallel)
	var wg sync.WaitGroup
	for i := range searches {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = fn(&searches[i])
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// partitions lists the topic's partitions with their leaders and offsets
// (an unknown topic has none: nothing to recover).
func (k *kafkaExporter) partitions(ctx context.Context, cl *kgo.Client) ([16]byte, []kafkaPartition, error) {
	meta, err := k.metadata(ctx, cl)
	if err != nil || meta == nil {
		return [16]byte{}, nil, err
	}
	parts := make([]kafkaPartition, 0, len(meta.Partitions))
	for _, p := range meta.Partitions {
		parts = append(parts, kafkaPartition{id: p.Partition, leader: p.Leader})
	}
	slices.SortFunc(parts, func(a, b kafkaPartition) int { return cmp.Compare(a.id, b.id) })
	byID := map[int32]int{}
	for i, p := range parts {
		byID[p.id] = i
	}
	// -2 is the log start offset; -1 the end, read_committed: the last
	// stable offset.
	for _, ts := range []int64{-2, -1} {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.IsolationLevel = 1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = k.c.Topic
		for _, p := range parts {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.id
			rp.Timestamp = ts
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return [16]byte{}, nil, err
		}
		n := 0
		for _, t := range resp.Topics {
			for _, rp := range t.Partitions {
				i, ok := byID[rp.Partition]
				if t.Topic != k.c.Topic || !ok {
					continue
				}
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return [16]byte{}, nil, fmt.Errorf("partition %d: %w", rp.Partition, err)
				}
				if ts == -2 {
					parts[i].start = rp.Offset
				} else {
					parts[i].end = rp.Offset
				}
				n++
			}
		}
		if n != len(parts) {
			return [16]byte{}, nil, fmt.Errorf("list offsets: %d of %d partitions answered", n, len(parts))
		}
	}
	return meta.TopicID, parts, nil
}

// metadata is the topic's metadata (nil: the topic does not exist).
func (k *kafkaExporter) metadata(ctx context.Context, cl *kgo.Client) (*kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(k.c.Topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.Topic == nil || *t.Topic != k.c.Topic {
			continue
		}
		err := kerr.ErrorForCode(t.ErrorCode)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, nil
}

// search reads up to n (n < 0: all) of the search's windows, newest
// first, while none has held a record of this export.
func (k *kafkaExporter) search(ctx context.Context, cl *kgo.Client, topicID [16]byte, s *kafkaSearch, n int) error {
	for ; n != 0 && len(s.windows) > 0 && s.last.IsZero(); n-- {
		last, err := k.readWindow(ctx, cl, topicID, &s.p, s.windows[0])
		if err != nil {
			s.last, s.partial = last, !last.IsZero()
			return fmt.Errorf("partition %d: %w", s.p.id, err)
		}
		s.last, s.windows = last, s.windows[1:]
	}
	return nil
}

// readWindow reads the committed records at offsets [w.lo, w.hi) of the
// partition and returns this export's largest position among them (zero:
// none; with an error, the largest before it). Transaction markers and
// aborted records occupy offsets too and are skipped.
func (k *kafkaExporter) readWindow(ctx context.Context, cl *kgo.Client, topicID [16]byte, p *kafkaPartition, w kafkaWindow) (LogPos, error) {
	var last LogPos
	dec := kgo.DefaultDecompressor()
	retries := 0
	for off := w.lo; off < w.hi; {
		rp, err := k.fetch(ctx, cl, topicID, p, off)
		switch {
		case err == nil:
		case errors.Is(err, kerr.OffsetOutOfRange) && rp.LogStartOffset > off:
			// Retention removed offsets since they were listed.
			off = rp.LogStartOffset
			continue
		case kerr.IsRetriable(err) && retries < kafkaFetchRetries:
			// A leader change: find the new leader and ask again.
			retries++
			select {
			case <-ctx.Done():
				return last, ctx.Err()
			case <-time.After(time.Duration(retries) * 100 * time.Millisecond):
			}
			if err := k.refreshLeader(ctx, cl, p); err != nil {
				return last, err
			}
			continue
		default:
			return last, err
		}
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: off, IsolationLevel: kgo.ReadCommitted(), Topic: k.c.Topic, Partition: p.id,
		}, &rp, dec, nil)
		if fp.Err != nil {
			return last, fmt.Errorf("offset %d: %w", off, fp.Err)
		}
		for _, r := range fp.Records {
			if r.Offset >= w.hi {
				break // read already, in the window after this one
			}
			if pos, ok := k.position(r); ok && last.Less(pos) {
				last = pos
			}
		}
		if next <= off {
			return last, fmt.Errorf("fetch at offset %d returned nothing below the last stable offset %d", off, rp.LastStableOffset)
		}
		off, retries = next, 0
	}
	return last, nil
}

// fetch reads the partition from off, read_committed, from its leader.
func (k *kafkaExporter) fetch(ctx context.Context, cl *kgo.Client, topicID [16]byte, p *kafkaPartition, off int64) (kmsg.FetchResponseTopicPartition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 100 // the offsets are below the last stable offset: there is data
	req.MinBytes = 1
	req.MaxBytes = kafkaFetchBytes
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = k.c.Topic, topicID // by name before v13, by id from v13
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.id, off, kafkaFetchBytes
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Broker(int(p.leader)).RetriableRequest(ctx, req)
	if err != nil {
		return kmsg.FetchResponseTopicPartition{}, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kmsg.FetchResponseTopicPartition{}, err
	}
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			if rp.Partition == p.id {
				return rp, kerr.ErrorForCode(rp.ErrorCode)
			}
		}
	}
	return kmsg.FetchResponseTopicPartition{}, fmt.Errorf("fetch: no answer for partition %d", p.id)
}

// refreshLeader reads the partition's leader again.
func (k *kafkaExporter) refreshLeader(ctx context.Context, cl *kgo.Client, p *kafkaPartition) error {
	meta, err := k.metadata(ctx, cl)
	if err != nil {
		return err
	}
	if meta != nil {
		for _, mp := range meta.Partitions {
			if mp.Partition == p.id {
				p.leader = mp.Leader
				return nil
			}
		}
	}
	return fmt.Errorf("partition %d is gone from the topic's metadata", p.id)
}

// position is r's bulwark-pos when r is a record of this export.
func (k *kafkaExporter) position(r *kgo.Record) (LogPos, bool) {
	if kafkaHeader(r, "bulwark-export") != k.c.Name {
		return LogPos{}, false
	}
	return parseLogPos(kafkaHeader(r, "bulwark-pos"))
}

// kafkaHeader is the value of a record's header key ("" when absent).
func kafkaHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// client starts the producer session: the transactional producer (its
// id initialised first, which fences an older producer of this export and
// aborts its open transaction), then the recovery of the last committed
// position.
func (k *kafkaExporter) client(ctx context.Context) (*kgo.Client, error) {
	if k.cl != nil {
		return k.cl, nil
	}
	opts, err := k.producerOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", k.c.Name, err)
	}
	// An empty transaction initialises the producer id (InitProducerID)
	// before the tail is read, so no older producer can commit after it.
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka %s: begin transaction: %w", k.c.Name, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka %s: initialise the transactional producer: %w", k.c.Name, err)
	}
	last, err := k.recover(ctx)
	if err != nil {
		cl.Close()
		return nil, err
	}
	v2, err := k.transactionsV2(ctx, cl)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka %s: api versions: %w", k.c.Name, err)
	}
	k.cl, k.last, k.implicitGroup, k.noGroup, k.topicID = cl, last, v2, false, [16]byte{}
	return cl, nil
}

// Deliver produces the batch in one transaction: all of it is committed
// or none. Records at or before the position recovered at the start of
// the session were committed already and count as delivered.
func (k *kafkaExporter) Deliver(ctx context.Context, recs []Record) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	cl, err := k.client(ctx)
	if err != nil {
		return err
	}
	msgs := make([]*kgo.Record, 0, len(recs))
	idx := make([]int, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		if !r.Pos.IsZero() && !k.last.Less(r.Pos) {
			continue // committed by an earlier session
		}
		v, err := encodeRecord(r, k.c.Format, k.deps.Version)
		if err != nil {
			return Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
		}
		h := []kgo.RecordHeader{{Key: "bulwark-id", Value: []byte(r.ID)}, {Key: "bulwark-kind", Value: []byte(r.Kind)},
			{Key: "bulwark-export", Value: []byte(k.c.Name)}}
		if !r.Pos.IsZero() {
			h = append(h, kgo.RecordHeader{Key: "bulwark-pos", Value: []byte(r.Pos.String())})
		}
		msgs = append(msgs, &kgo.Record{Key: []byte(r.Fingerprint()), Value: v, Timestamp: r.Time, Context: ctx, Headers: h})
		idx = append(idx, i)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := cl.BeginTransaction(); err != nil {
		k.reset()
		return fmt.Errorf("kafka %s: begin transaction: %w", k.c.Name, err)
	}
	res := cl.ProduceSync(ctx, msgs...)
	errs := make([]error, len(recs))
	var first error
	permanent := true
	for i, pr := range res {
		if pr.Err == nil {
			continue
		}
		err := fmt.Errorf("kafka %s: record %s: %w", k.c.Name, recs[idx[i]].ID, pr.Err)
		if errors.Is(pr.Err, kerr.MessageTooLarge) || errors.Is(pr.Err, kerr.InvalidRecord) {
			err = Permanent(err)
		} else {
			permanent = false
		}
		errs[idx[i]] = err
		if first == nil {
			first = err
		}
	}
	if first != nil {
		// The transaction is aborted as a whole: records that were
		// produced are retried with the others (none is visible to
		// read_committed consumers).
		if err := cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort); err != nil {
			k.reset()
		}
		if permanent && len(msgs) == 1 {
			return first
		}
		for _, i := range idx {
			if errs[i] == nil || !errors.Is(errs[i], ErrPermanent) {
				errs[i] = cmpErr(errs[i], first)
			}
		}
		return &BatchError{Errs: errs}
	}
	if err := k.commitPosition(ctx, cl, res, recs[idx[len(idx)-1]].Pos); err != nil {
		// Records and position commit together or not at all.
		if err := cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort); err != nil {
			k.reset()
		}
		return fmt.Errorf("kafka %s: %w", k.c.Name, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// Unknown whether it committed: a new session recovers the
		// position from the topic.
		k.reset()
		return fmt.Errorf("kafka %s: commit: %w", k.c.Name, err)
	}
	if last := recs[idx[len(idx)-1]].Pos; k.last.Less(last) {
		k.last = last
	}
	return nil
}

// cmpErr is err, or the batch's first error for a record that had none
// (it was in the aborted transaction).
func cmpErr(err, first error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("aborted with the batch: %v", first) // not %w: a retry, even when first was permanent
}

// reset drops the producer session (the next Deliver starts a new one and
// recovers the position). k.mu is held.
func (k *kafkaExporter) reset() {
	if k.cl != nil {
		k.cl.Close()
		k.cl = nil
	}
}

// Close flushes nothing (ProduceSync waits) and closes the client.
func (k *kafkaExporter) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl != nil {
		k.cl.Close()
		k.cl = nil
	}
	return nil
}
