package console

import (
	"encoding/json"
	"net/http"

	"github.com/bulwark-security/bulwark/internal/store"
)

// Posture reports (issue 6): the reports `bulwark posture … --server`
// sent, newest first, with their score per framework, so a cluster's or a
// node's posture can be followed over time.

type postureFramework struct {
	Name   string  `json:"name"`
	Score  float64 `json:"score"`
	Failed int     `json:"failed"`
}

type postureRow struct {
	store.PostureReport
	Frameworks []postureFramework
	Delta      float64 // score change since the previous report of the same target and name on this page
	HasDelta   bool
	APIHref    string
}

type postureData struct {
	*pageData
	Target string
	Rows   []postureRow
	Pager  pager
	Chips  []chip
}

func (c *Console) posturePage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	d := &postureData{pageData: c.pageData(r, "posture", "Posture")}
	d.Target = q.enum("target", "cluster", "node", "manifests")
	page := q.page()
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	const per = 50
	recs, total, err := c.st.ListPostureReports(r.Context(), store.PostureFilter{Target: d.Target},
		store.Page{Limit: per, Offset: (page - 1) * per})
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	// The page is newest first: a row's previous report is the next row
	// with the same target and name.
	for i, rec := range recs {
		row := postureRow{PostureReport: rec, APIHref: c.url("/api/v1/posture/reports/") + itoa64(rec.ID)}
		var sum struct {
			Frameworks []postureFramework `json:"frameworks"`
		}
		if json.Unmarshal(rec.Summary, &sum) == nil {
			for _, f := range sum.Frameworks {
				if f.Name != "All controls" {
					row.Frameworks = append(row.Frameworks, f)
				}
			}
		}
		for _, prev := range recs[i+1:] {
			if prev.Target == rec.Target && prev.Name == rec.Name {
				row.Delta, row.HasDelta = rec.Score-prev.Score, true
				break
			}
		}
		d.Rows = append(d.Rows, row)
	}
	path := c.url("/posture")
	d.Pager = newPager(path, q.v, page, per, total)
	for _, s := range []struct{ k, l string }{{"", "All"}, {"cluster", "Clusters"}, {"node", "Nodes"}, {"manifests", "Manifests"}} {
		d.Chips = append(d.Chips, chip{Key: s.k, Label: s.l, Active: d.Target == s.k, Href: link(path, nil, "target", s.k)})
	}
	c.render(w, r, http.StatusOK, "posture", d)
}

func itoa64(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
