package console

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

// The clusters page: every cluster reporting to central (its agents
// register it), when it last reported, its agent version and labels, and
// what is going on in it: open alerts, running images, and the admission
// decisions and denials of the last 24 hours — each a link to the page
// listing them.

type clusterRow struct {
	store.Cluster
	Labels []string // "k=v", sorted
	// Stale: no report for clusterStale.
	Stale                      bool
	NewAlerts, AckAlerts       int
	Images                     int
	Decisions, Denials         int
	AlertsHref, AdmissionHref  string
	DenialsHref, AckAlertsHref string
	PostureHref                string
	// The latest posture report of a cluster of this name, if any.
	HasPosture    bool
	PostureScore  float64
	PostureFailed int
}

type clustersData struct {
	*pageData
	Rows []clusterRow
}

// clusterStale is how long a cluster may stay silent before it is marked
// stale (agents report every minute).
const clusterStale = 15 * time.Minute

// maxClusterRows bounds the page.
const maxClusterRows = 500

func (c *Console) clustersPage(w http.ResponseWriter, r *http.Request) {
	if q := newQuery(r); q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	ctx := r.Context()
	cs, err := c.st.ListClusters(ctx)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	d := &clustersData{pageData: c.pageData(r, "clusters", "Clusters")}
	now := c.now()
	day := now.Add(-24 * time.Hour)
	count := func(n int, err error) int {
		if err != nil {
			c.log.WarnContext(ctx, "console: cluster counts", "err", err)
			return 0
		}
		return n
	}
	for i, cl := range cs {
		if i == maxClusterRows {
			break
		}
		row := clusterRow{Cluster: cl, Stale: now.Sub(cl.LastSeen) > clusterStale}
		for k, v := range cl.Labels {
			row.Labels = append(row.Labels, k+"="+v)
		}
		slices.Sort(row.Labels)
		one := store.Page{Limit: 1}
		_, n, err := c.st.ListAlerts(ctx, store.AlertFilter{Cluster: cl.Name, Status: store.AlertNew}, one)
		row.NewAlerts = count(n, err)
		_, n, err = c.st.ListAlerts(ctx, store.AlertFilter{Cluster: cl.Name, Status: store.AlertAcknowledged}, one)
		row.AckAlerts = count(n, err)
		_, n, err = c.st.ListImages(ctx, store.ImageFilter{Cluster: cl.Name}, one)
		row.Images = count(n, err)
		_, n, err = c.st.ListAdmissionDecisions(ctx, store.AdmissionFilter{Cluster: cl.Name, Since: day}, one)
		row.Decisions = count(n, err)
		_, n, err = c.st.ListAdmissionDecisions(ctx, store.AdmissionFilter{Cluster: cl.Name, Since: day, Verdict: "deny"}, one)
		row.Denials = count(n, err)
		if reps, _, err := c.st.ListPostureReports(ctx, store.PostureFilter{Target: "cluster", Name: cl.Name}, one); err == nil && len(reps) > 0 {
			row.HasPosture, row.PostureScore, row.PostureFailed = true, reps[0].Score, reps[0].Failed
		}
		q := url.Values{"cluster": {cl.Name}}
		row.AlertsHref = c.url("/alerts?" + q.Encode() + "&status=new")
		row.AckAlertsHref = c.url("/alerts?" + q.Encode() + "&status=acknowledged")
		row.AdmissionHref = c.url("/admission?" + q.Encode() + "&range=24h")
		row.DenialsHref = c.url("/admission?" + q.Encode() + "&range=24h&verdict=deny")
		row.PostureHref = c.url("/posture?target=cluster")
		d.Rows = append(d.Rows, row)
	}
	c.render(w, r, http.StatusOK, "clusters", d)
}
