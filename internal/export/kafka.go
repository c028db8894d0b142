package export

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaExporter produces each batch in a Kafka transaction with a
// transactional id stable per export ("bulwark-export-<name>"), so records
// are exactly once across central restarts, not only within a producer
// session: a new process initialising the same transactional id fences the
// old producer and aborts its unfinished transaction, and before its first
// batch it reads the tail of every partition (read_committed) for this
// export's last committed log position (the bulwark-pos header). Records at
// or before it were committed by a process that died before moving the
// export's cursor: they are skipped, not sent twice. The message key is the
// record's fingerprint (repeats of one alert land in one partition, in
// order); the bulwark-id header carries the record id. Consumers must read
// with isolation.level=read_committed to see each record once.
type kafkaExporter struct {
	c    *Config
	deps Deps

	mu sync.Mutex
	cl *kgo.Client
	// last is this export's last position committed to the topic, read at
	// the start of the producer session (zero: none found).
	last LogPos
}

// kafkaTailWindow is how far before each partition's end the recovery
// looks for this export's last committed record: a few batches plus the
// transaction markers between them.
const kafkaTailWindow = 4 * maxBatch

func newKafka(c *Config, deps Deps) (*kafkaExporter, error) {
	k := &kafkaExporter{c: c, deps: deps}
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

// recover reads the end of every partition of the topic, committed
// records only, and returns this export's largest bulwark-pos.
func (k *kafkaExporter) recover(ctx context.Context) (LogPos, error) {
	opts, err := k.opts()
	if err != nil {
		return LogPos{}, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(k.c.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-kafkaTailWindow)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		return LogPos{}, fmt.Errorf("kafka %s: recovery consumer: %w", k.c.Name, err)
	}
	defer cl.Close()
	var last LogPos
	// Read until a short poll brings nothing more (the tail is bounded),
	// within the export's timeout.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(k.c.Timeout))
	defer cancel()
	for ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var export, pos string
			for _, h := range r.Headers {
				switch h.Key {
				case "bulwark-export":
					export = string(h.Value)
				case "bulwark-pos":
					pos = string(h.Value)
				}
			}
			if p, ok := parseLogPos(pos); ok && export == k.c.Name && last.Less(p) {
				last = p
			}
		})
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) && !errors.Is(e.Err, context.Canceled) {
				return LogPos{}, fmt.Errorf("kafka %s: read the topic's tail: %w", k.c.Name, e.Err)
			}
		}
		if n == 0 {
			return last, nil
		}
	}
	return LogPos{}, fmt.Errorf("kafka %s: read the topic's tail: %w", k.c.Name, ctx.Err())
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
	k.cl, k.last = cl, last
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
