package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	body, err := e.appendBulk(make([]byte, 0, 1024*len(recs)), recs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(e.c.URL, "/")+"/_bulk", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("elasticsearch %s: %w", e.c.Name, err)
	}
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
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&ans); err != nil {
		return fmt.Errorf("elasticsearch %s: read bulk answer: %w", e.c.Name, err)
	}
	if !ans.Errors {
		if len(ans.Items) != len(recs) {
			return fmt.Errorf("elasticsearch %s: bulk answer has %d items for %d records", e.c.Name, len(ans.Items), len(recs))
		}
		return nil
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
