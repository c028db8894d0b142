package export

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaExporter produces each record to a topic with franz-go's
// idempotent producer (acks=all, the default): within one producer
// session the broker drops a retried batch it already has, so broker
// failovers and lost answers do not duplicate records. The message key is
// the record's fingerprint (repeats of one alert land in one partition, in
// order); the bulwark-id header carries the record id for consumers that
// deduplicate across central restarts (a new process is a new producer id,
// so a batch delivered just before a crash and redelivered after it is
// sent twice — at least once across restarts).
type kafkaExporter struct {
	c    *Config
	deps Deps

	mu sync.Mutex
	cl *kgo.Client
}

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
		kgo.DefaultProduceTopic(k.c.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.ClientID("bulwark-export-" + k.c.Name),
		kgo.MaxBufferedRecords(maxBatch * 2),
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

func (k *kafkaExporter) client() (*kgo.Client, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl != nil {
		return k.cl, nil
	}
	opts, err := k.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka %s: %w", k.c.Name, err)
	}
	k.cl = cl
	return cl, nil
}

func (k *kafkaExporter) Deliver(ctx context.Context, recs []Record) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	msgs := make([]*kgo.Record, len(recs))
	for i := range recs {
		r := &recs[i]
		v, err := encodeRecord(r, k.c.Format, k.deps.Version)
		if err != nil {
			return Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
		}
		msgs[i] = &kgo.Record{Key: []byte(r.Fingerprint()), Value: v, Timestamp: r.Time, Context: ctx,
			Headers: []kgo.RecordHeader{{Key: "bulwark-id", Value: []byte(r.ID)}, {Key: "bulwark-kind", Value: []byte(r.Kind)}}}
	}
	res := cl.ProduceSync(ctx, msgs...)
	errs := make([]error, len(recs))
	failed := 0
	for i, pr := range res {
		if pr.Err == nil {
			continue
		}
		failed++
		err := fmt.Errorf("kafka %s: record %s: %w", k.c.Name, recs[i].ID, pr.Err)
		if errors.Is(pr.Err, kerr.MessageTooLarge) || errors.Is(pr.Err, kerr.InvalidRecord) {
			err = Permanent(err)
		}
		errs[i] = err
	}
	switch {
	case failed == 0:
		return nil
	case failed == len(recs) && len(recs) == 1:
		return errs[0]
	}
	return &BatchError{Errs: errs}
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
