package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// elastic indexes a batch with one _bulk request. Each record is a
// "create" action with _id = the record's id, so a redelivered record is
// refused with 409 by the cluster instead of indexed twice: exactly once.
// Per-item results are honoured: 409 counts as delivered, 429 and 5xx are
// retried, other 4xx (mapping errors) become dead letters.
type elastic struct {
	c      *Config
	deps   Deps
	client *http.Client

	mu  sync.Mutex
	buf []byte // a request body's buffer, for the next request
	ans []byte // an answer's buffer, for the next answer
}

// bulkBody is a request body that says when the HTTP transport is done
// with it (Close), so that its buffer is only reused once nothing can read
// it any more (the transport may still be writing a body after Do
// returns, e.g. when the server answered early). GetBody's copies for a
// retried request count too.
type bulkBody struct {
	bytes.Reader
	closed atomic.Bool
	open   *atomic.Int32
}

func newBulkBody(p []byte, open *atomic.Int32) *bulkBody {
	open.Add(1)
	b := &bulkBody{open: open}
	b.Reset(p)
	return b
}

func (b *bulkBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.open.Add(-1)
	}
	return nil
}

func newElastic(c *Config, deps Deps) (*elastic, error) {
	cl, err := httpClient(c, deps)
	if err != nil {
		return nil, err
	}
	return &elastic{c: c, deps: deps, client: cl}, nil
}

func (e *elastic) Name() string { return e.c.Name }

type bulkAction struct {
	Create bulkMeta `json:"create"`
}

type bulkMeta struct {
	Index string `json:"_index"`
	ID    string `json:"_id"`
}

// esDoc adds @timestamp, the field Kibana and OpenSearch Dashboards look for.
type esDoc struct {
	Timestamp string `json:"@timestamp"`
	*Record
}

// appendBulk appends the NDJSON body of a _bulk request: a create action
// and the document of each record, as json.Encoder writes them. A record
// read from the log in json.Marshal's form has its document spliced from
// the stored bytes (@timestamp in front) instead of encoded again.
func (e *elastic) appendBulk(b []byte, recs []Record) ([]byte, error) {
	for i := range recs {
		r := &recs[i]
		b = append(b, `{"create":{"_index":`...)
		b = appendJSONString(b, e.c.Index)
		b = append(b, `,"_id":`...)
		b = appendJSONString(b, r.ID)
		b = append(b, "}}\n"...)
		switch {
		case e.c.Format == FormatOCSF:
			doc, err := json.Marshal(OCSF(r, e.deps.Version))
			if err != nil {
				return b, Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
			}
			b = append(b, doc...)
		case len(r.raw) > 2 && r.raw[0] == '{':
			b = append(b, `{"@timestamp":"`...)
			b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `",`...)
			b = append(b, r.raw[1:]...)
		default:
			doc, err := json.Marshal(esDoc{Timestamp: r.Time.UTC().Format(time.RFC3339Nano), Record: r})
			if err != nil {
				return b, Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
			}
			b = append(b, doc...)
		}
		b = append(b, '\n')
	}
	return b, nil
}

// appendJSONString appends s as a JSON string, as encoding/json writes it:
// directly when it needs no escaping (record ids, index names), else
// through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (e *elastic) Deliver(ctx context.Context, recs []Record) error {
	// The body's buffer is the previous request's when the transport let
	// go of it (a batch's body is about 1 KiB per record).
	e.mu.Lock()
	buf := e.buf
	e.buf = nil
	e.mu.Unlock()
	if buf == nil {
		buf = make([]byte, 0, 1024*len(recs))
	}
	body, err := e.appendBulk(buf[:0], recs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(e.c.URL, "/")+"/_bulk", nil)
	if err != nil {
		return fmt.Errorf("elasticsearch %s: %w", e.c.Name, err)
	}
	var open atomic.Int32
	req.Body, req.ContentLength = newBulkBody(body, &open), int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return newBulkBody(body, &open), nil }
	defer func() {
		if open.Load() == 0 {
			e.mu.Lock()
			e.buf = body[:0]
			e.mu.Unlock()
		}
	}()
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "bulwark/"+e.deps.Version)
	switch {
	case e.c.Secrets.APIKey != "":
		req.Header.Set("Authorization", "ApiKey "+e.c.Secrets.APIKey)
	case e.c.Username != "":
		req.SetBasicAuth(e.c.Username, e.c.Secrets.Password)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("elasticsearch %s: %w", e.c.Name, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return statusError("elasticsearch "+e.c.Name, resp)
	}
	// The answer is read whole, into the exporter's reused buffer.
	e.mu.Lock()
	abuf := e.ans
	e.ans = nil
	e.mu.Unlock()
	ab := bytes.NewBuffer(abuf[:0])
	if _, err := ab.ReadFrom(io.LimitReader(resp.Body, 64<<20)); err != nil {
		return fmt.Errorf("elasticsearch %s: read bulk answer: %w", e.c.Name, err)
	}
	defer func() {
		e.mu.Lock()
		e.ans = ab.Bytes()[:0]
		e.mu.Unlock()
	}()
	return e.bulkOutcome(ab.Bytes(), recs)
}

// bulkOutcome reads a _bulk answer (a 200's body) for recs: nil when every
// record was created (or had been: 409), a *BatchError saying which failed
// and how, or an error for the whole batch when the answer cannot be read
// or does not have one item per record. The answer is decoded twice at
// most: first only whether any item failed and how many there are (no
// allocation per item), then, only when some failed, each item's result.
func (e *elastic) bulkOutcome(body []byte, recs []Record) error {
	var quick struct {
		Errors bool       `json:"errors"`
		Items  []struct{} `json:"items"`
	}
	if err := json.Unmarshal(body, &quick); err != nil {
		return fmt.Errorf("elasticsearch %s: read bulk answer: %w", e.c.Name, err)
	}
	if len(quick.Items) != len(recs) {
		return fmt.Errorf("elasticsearch %s: bulk answer has %d items for %d records", e.c.Name, len(quick.Items), len(recs))
	}
	if !quick.Errors {
		return nil
	}
	// Each item is {"create": {...}}: a struct field, not a map per item
	// (a map made reading the answer cost as much as writing the body).
	var ans struct {
		Errors bool `json:"errors"`
		Items  []struct {
			Create *struct {
				ID     string `json:"_id"`
				Status int    `json:"status"`
				Error  *struct {
					Type   string `json:"type"`
					Reason string `json:"reason"`
				} `json:"error"`
			} `json:"create"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("elasticsearch %s: read bulk answer: %w", e.c.Name, err)
	}
	if len(ans.Items) != len(recs) {
		return fmt.Errorf("elasticsearch %s: bulk answer has %d items for %d records", e.c.Name, len(ans.Items), len(recs))
	}
	errs := make([]error, len(recs))
	failed := false
	for i, it := range ans.Items {
		res := it.Create
		if res == nil {
			errs[i] = fmt.Errorf("elasticsearch %s: item %d: no create result", e.c.Name, i)
			failed = true
			continue
		}
		switch {
		case res.Status/100 == 2, res.Status == http.StatusConflict:
			// Created, or created by an earlier delivery (same _id).
		default:
			reason := ""
			if res.Error != nil {
				reason = res.Error.Type + ": " + res.Error.Reason
			}
			err := fmt.Errorf("elasticsearch %s: record %s: status %d %s", e.c.Name, recs[i].ID, res.Status, cut(reason, 300))
			if res.Status == http.StatusTooManyRequests || res.Status >= 500 || res.Status == http.StatusRequestTimeout {
				errs[i] = err
			} else {
				errs[i] = Permanent(err)
			}
			failed = true
		}
	}
	if !failed {
		return nil
	}
	return &BatchError{Errs: errs}
}
