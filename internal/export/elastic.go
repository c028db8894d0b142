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

func (e *elastic) Deliver(ctx context.Context, recs []Record) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body) // one JSON document per line, as NDJSON wants
	for i := range recs {
		r := &recs[i]
		if err := enc.Encode(bulkAction{bulkMeta{Index: e.c.Index, ID: r.ID}}); err != nil {
			return Permanent(err)
		}
		var doc any = esDoc{Timestamp: r.Time.UTC().Format(time.RFC3339Nano), Record: r}
		if e.c.Format == FormatOCSF {
			doc = OCSF(r, e.deps.Version)
		}
		if err := enc.Encode(doc); err != nil {
			return Permanent(fmt.Errorf("encode record %s: %w", r.ID, err))
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(e.c.URL, "/")+"/_bulk", &body)
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
	var ans struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			ID     string `json:"_id"`
			Status int    `json:"status"`
			Error  *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
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
		res, ok := it["create"]
		if !ok {
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
