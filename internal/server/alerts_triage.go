package server

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// bulkStatusInput is the body of POST /api/v1/alerts/status: alert ids,
// or a filter with the alert list's query parameters (status, severity,
// source, rule, cluster, namespace, workload, since, until, q, suppressed,
// suppression) as strings — "every alert this list shows" is the list's
// own filter, sent back.
type bulkStatusInput struct {
	IDs    []int64           `json:"ids"`
	Filter map[string]string `json:"filter"`
	Status string            `json:"status"`
	Note   string            `json:"note"`
}

// setAlertsStatus changes the status of many alerts at once: one
// transaction, one audit entry naming the count and the filter (or ids),
// bounded by store.MaxBulkAlerts.
func (s *Server) setAlertsStatus(c *call) error {
	c.audit("alerts", nil)
	var in bulkStatusInput
	if err := c.decode(&in, 256<<10, true); err != nil {
		return err
	}
	if len(in.Note) > 4096 {
		return badRequest("note is limited to 4096 bytes")
	}
	var sel store.AlertSelection
	what := map[string]any{"status": in.Status, "note": in.Note}
	switch {
	case len(in.IDs) > 0 && in.Filter != nil:
		return badRequest("give ids or filter, not both")
	case len(in.IDs) > store.MaxBulkAlerts:
		return badRequest("at most %d alert ids per request", store.MaxBulkAlerts)
	case len(in.IDs) > 0:
		sel.IDs = in.IDs
		// The audit entry names the ids, the first 100 of a long list.
		what["ids"], what["id_count"] = in.IDs[:min(len(in.IDs), 100)], len(in.IDs)
	case in.Filter != nil:
		q := url.Values{}
		for k, v := range in.Filter {
			q.Set(k, v)
		}
		f, err := alertFilterFromQuery(q, time.Now())
		if err != nil {
			return err
		}
		sel.Filter = &f
		what["filter"] = store.DescribeAlertFilter(f)
	default:
		return badRequest("give the alert ids or a filter")
	}
	c.audit("alerts", what)
	res, err := s.st.SetAlertsStatus(c.r.Context(), sel, store.AlertStatus(in.Status), c.actor(), in.Note, store.MaxBulkAlerts)
	if err != nil {
		return err
	}
	what["matched"], what["updated"], what["skipped"] = res.Matched, res.Updated, res.Skipped
	c.audit("alerts", what)
	if res.Missing == nil {
		res.Missing = []int64{}
	}
	return c.JSON(http.StatusOK, res)
}

// applySuppression suppresses the open alerts stored before a suppression
// that it matches.
func (s *Server) applySuppression(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", id), nil)
	n, err := s.st.ApplySuppression(c.r.Context(), id, c.actor())
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", id), map[string]any{"applied": n})
	return c.JSON(http.StatusOK, map[string]int{"applied": n})
}

// releaseSuppression makes the open alerts a suppression holds visible
// again: the explicit step an expiry or a deletion never takes.
func (s *Server) releaseSuppression(c *call) error {
	id, err := c.idParam("id")
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", id), nil)
	released, kept, err := s.st.ReleaseSuppression(c.r.Context(), id, c.actor())
	if err != nil {
		return err
	}
	c.audit(fmt.Sprintf("suppression/%d", id), map[string]any{"released": released, "kept": kept})
	return c.JSON(http.StatusOK, map[string]int{"released": released, "kept": kept})
}
