package console

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// sevOrder is the display order, most severe first.
var sevOrder = []vulndb.Severity{vulndb.SeverityCritical, vulndb.SeverityHigh, vulndb.SeverityMedium, vulndb.SeverityLow, vulndb.SeverityUnknown}

var (
	sevKeys   = []string{"critical", "high", "medium", "low", "unknown"}
	sevLabels = []string{"Critical", "High", "Medium", "Low", "Unknown"}
)

// sevIndex is a severity's position in sevOrder.
func sevIndex(s vulndb.Severity) int {
	switch s {
	case vulndb.SeverityCritical:
		return 0
	case vulndb.SeverityHigh:
		return 1
	case vulndb.SeverityMedium:
		return 2
	case vulndb.SeverityLow:
		return 3
	}
	return 4
}

// sevCounts are counts in sevOrder.
type sevCounts [5]int

func (s sevCounts) total() int { return s[0] + s[1] + s[2] + s[3] + s[4] }

func countsOf(c store.FindingCounts) sevCounts {
	return sevCounts{c.Critical, c.High, c.Medium, c.Low, c.Unknown}
}

// trendRanges are the overview's selectable windows, in days.
var trendRanges = []int{7, 30, 90}

// maxTrendEvents bounds the finding events read to draw the trend. Beyond
// it the chart starts later than asked (and says so).
const maxTrendEvents = 50_000

type sevCard struct {
	Key, Label string
	N          int
	Delta      int // change over the window
	Spark      sparkline
	Href       string
}

type legendItem struct {
	Key, Label string
	N          int
}

type fixRow struct {
	Key, Label   string
	Fixable, Not int
	Pct          int
	Segs         []barSeg
}

type kevRow struct {
	ID       string
	Summary  string
	Severity vulndb.Severity
	CVSS     float64
	Images   int
	Packages []string
}

type scanRow struct {
	store.ScanRecord
	ImageHref string
}

type dbInfo struct {
	Known   bool
	Built   time.Time
	Age     time.Duration
	Level   string // "ok", "warn", "bad"
	Vulns   int
	Sources []vulndb.SourceStatus
	// FromScan says the build time comes from the latest scan's record,
	// not from the database itself.
	FromScan bool
}

type overviewData struct {
	Range        int
	Ranges       []rangeOpt
	Cards        []sevCard
	Total        int
	KEV          int
	Fixable      int
	FixPct       int
	Images       int
	ImagesAtRisk int
	ImagesKEV    int
	Trend        areaChart
	TrendLegend  []legendItem
	TrendFrom    time.Time
	TrendPartial bool
	TrendApprox  bool
	// TrendYoung: all findings appeared today, so the chart is one step.
	TrendYoung bool
	Fix        donutChart
	FixRows    []fixRow
	Top        barChart
	KEVRows    []kevRow
	KEVVulns   int
	Scans      []scanRow
	DB         dbInfo
	Queue      store.QueueStats
}

type rangeOpt struct {
	Days   int
	Href   string
	Active bool
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	days := 30
	if s := q.enum("range", "7", "30", "90"); s != "" {
		days, _ = strconv.Atoi(s)
	}
	if q.err != nil {
		c.errorPage(w, r, http.StatusBadRequest, q.err.Error())
		return
	}
	ov, err := c.overview(r.Context(), days)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	for _, d := range trendRanges {
		ov.Ranges = append(ov.Ranges, rangeOpt{Days: d, Href: link(c.url("/"), nil, "range", strconv.Itoa(d)), Active: d == days})
	}
	c.render(w, r, http.StatusOK, "overview", struct {
		*pageData
		*overviewData
	}{c.pageData(r, "overview", "Overview"), ov})
}

// overview computes the dashboard, from the cache when fresh.
func (c *Console) overview(ctx context.Context, days int) (*overviewData, error) {
	now := c.now()
	key := strconv.Itoa(days)
	oc := &c.ovCache
	oc.mu.Lock()
	if ttl := c.cfg.DashboardCacheTTL; ttl > 0 && oc.data != nil && oc.key == key && now.Sub(oc.at) >= 0 && now.Sub(oc.at) < ttl {
		d := *oc.data
		oc.mu.Unlock()
		return &d, nil
	}
	oc.mu.Unlock()
	d, err := c.computeOverview(ctx, days, now)
	if err != nil {
		return nil, err
	}
	oc.mu.Lock()
	oc.key, oc.at, oc.data = key, now, d
	oc.mu.Unlock()
	cp := *d
	return &cp, nil
}

// countFindings returns how many open findings match f (a COUNT query:
// the page holds one row).
func (c *Console) countFindings(ctx context.Context, f store.FindingFilter) (int, error) {
	_, n, err := c.st.ListFindings(ctx, f, store.Page{Limit: 1})
	return n, err
}

// severityTotals counts open findings by severity with "at least"
// queries, which the store answers with COUNTs.
func (c *Console) severityTotals(ctx context.Context, base store.FindingFilter) (sevCounts, error) {
	var atLeast [5]int // index: vulndb.Severity
	for s := vulndb.SeverityUnknown; s <= vulndb.SeverityCritical; s++ {
		f := base
		f.MinSeverity = s
		n, err := c.countFindings(ctx, f)
		if err != nil {
			return sevCounts{}, err
		}
		atLeast[s] = n
	}
	var out sevCounts
	for s := vulndb.SeverityUnknown; s <= vulndb.SeverityCritical; s++ {
		n := atLeast[s]
		if s < vulndb.SeverityCritical {
			n -= atLeast[s+1]
		}
		out[sevIndex(s)] = max(n, 0)
	}
	return out, nil
}

func (c *Console) computeOverview(ctx context.Context, days int, now time.Time) (*overviewData, error) {
	d := &overviewData{Range: days}
	// Events first: a scan landing between the two reads then shows up
	// in the totals (the latest point) rather than being undone twice.
	start := dayStart(now).AddDate(0, 0, -(days - 1))
	events, partial, err := c.trendEvents(ctx, start)
	if err != nil {
		return nil, err
	}
	totals, err := c.severityTotals(ctx, store.FindingFilter{})
	if err != nil {
		return nil, err
	}
	fixable, err := c.severityTotals(ctx, store.FindingFilter{Fixable: true})
	if err != nil {
		return nil, err
	}
	if d.KEV, err = c.countFindings(ctx, store.FindingFilter{KEV: true}); err != nil {
		return nil, err
	}
	d.Total, d.Fixable = totals.total(), fixable.total()
	if d.Total > 0 {
		d.FixPct = int(float64(d.Fixable) * 100 / float64(d.Total))
	}
	if _, d.Images, err = c.st.ListImages(ctx, store.ImageFilter{}, store.Page{Limit: 1}); err != nil {
		return nil, err
	}
	if _, d.ImagesAtRisk, err = c.st.ListImages(ctx, store.ImageFilter{MinSeverity: vulndb.SeverityHigh}, store.Page{Limit: 1}); err != nil {
		return nil, err
	}
	if _, d.ImagesKEV, err = c.st.ListImages(ctx, store.ImageFilter{KEV: true}, store.Page{Limit: 1}); err != nil {
		return nil, err
	}

	// Trend.
	var dayList []time.Time
	for t := start; !t.After(now); t = t.AddDate(0, 0, 1) {
		dayList = append(dayList, t)
	}
	series, exact := trendSeries(totals, events, dayList)
	if partial && len(events) > 0 {
		// Only days ending after the oldest event read are complete.
		oldest := events[0].At
		k := 0
		for k < len(dayList) && !dayList[k].AddDate(0, 0, 1).After(oldest) {
			k++
		}
		dayList = dayList[k:]
		for i := range series {
			series[i] = series[i][k:]
		}
	}
	d.TrendPartial, d.TrendApprox = partial, !exact
	d.TrendYoung = d.Total > 0 && len(dayList) > 1
	for i := range series {
		for _, v := range series[i][:max(0, len(series[i])-1)] {
			if v > 0 {
				d.TrendYoung = false
			}
		}
	}
	if len(dayList) > 0 {
		d.TrendFrom = dayList[0]
	}
	layers := make([][]int, 5)
	for i := range layers {
		layers[i] = series[i]
	}
	d.Trend = stackedArea(dayList, sevKeys, sevLabels, layers, 760, 240)
	d.Trend.Title = "Open findings by severity"
	d.Trend.Desc = fmt.Sprintf("Open findings per day over the last %d days, stacked by severity; today %d in total.", days, d.Total)
	for i := range sevOrder {
		d.TrendLegend = append(d.TrendLegend, legendItem{Key: sevKeys[i], Label: sevLabels[i], N: totals[i]})
		card := sevCard{Key: sevKeys[i], Label: sevLabels[i], N: totals[i],
			Href: link(c.url("/images"), nil, "severity", sevKeys[i])}
		if s := series[i]; len(s) > 0 {
			card.Delta = totals[i] - s[0]
			card.Spark = spark(s, 96, 26)
		}
		d.Cards = append(d.Cards, card)
	}

	// Fixable vs not.
	d.Fix = donut([]string{"fixable", "unfixable"}, []string{"Fix available", "No fix yet"},
		[]int{d.Fixable, d.Total - d.Fixable}, 148, "Findings with a fixed version")
	for i := range sevOrder {
		fr := fixRow{Key: sevKeys[i], Label: sevLabels[i], Fixable: fixable[i], Not: totals[i] - fixable[i]}
		if totals[i] > 0 {
			fr.Pct = fixable[i] * 100 / totals[i]
		}
		// Each row is its own 100%: the share with a fix, per severity.
		fr.Segs = stackBar([]string{"fixable", "unfixable"}, []string{"with a fix", "without a fix"},
			[]int{fr.Fixable, fr.Not}, totals[i], 220)
		d.FixRows = append(d.FixRows, fr)
	}

	// Top risky images.
	if d.Top, err = c.topImages(ctx); err != nil {
		return nil, err
	}
	// Exploited in the wild.
	if d.KEVRows, d.KEVVulns, err = c.kevRows(ctx, 6); err != nil {
		return nil, err
	}
	scans, _, err := c.st.ListScans(ctx, store.ScanFilter{}, store.Page{Limit: 8})
	if err != nil {
		return nil, err
	}
	for _, s := range scans {
		sr := scanRow{ScanRecord: s}
		if s.ImageDigest != "" {
			sr.ImageHref = c.url("/images/" + s.ImageDigest)
		}
		d.Scans = append(d.Scans, sr)
	}
	if d.DB, err = c.dbInfo(ctx, now); err != nil {
		return nil, err
	}
	if d.Queue, err = c.st.QueueStats(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func dayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// trendEvents reads the finding events since start, oldest first, at most
// maxTrendEvents of the newest; partial reports that older ones were left.
func (c *Console) trendEvents(ctx context.Context, start time.Time) (events []store.FindingEvent, partial bool, err error) {
	const per = 1000
	for off := 0; ; off += per {
		page, total, err := c.st.ListFindingEvents(ctx, store.EventFilter{Since: start}, store.Page{Limit: per, Offset: off, Sort: "-id"})
		if err != nil {
			return nil, false, err
		}
		events = append(events, page...)
		if len(page) < per || off+per >= total {
			break
		}
		if len(events) >= maxTrendEvents {
			partial = true
			break
		}
	}
	slices.Reverse(events)
	return events, partial, nil
}

// trendSeries reconstructs, for each day, the open findings by severity at
// the end of that day: it starts from today's totals and undoes the
// finding events newest first. A "new" event added a finding, a "fixed"
// one removed one; a "changed" one moved it from the severity of the same
// finding's previous event to its own. When that previous event is older
// than the events given, the move cannot be undone and exact is false.
// events must be sorted by id, oldest first.
func trendSeries(current sevCounts, events []store.FindingEvent, days []time.Time) (series [5][]int, exact bool) {
	exact = true
	prev := make([]int, len(events))
	last := make(map[int64]int, len(events))
	for i, e := range events {
		p, ok := last[e.FindingID]
		if !ok {
			p = -1
		}
		prev[i] = p
		last[e.FindingID] = i
	}
	for i := range series {
		series[i] = make([]int, len(days))
	}
	counts := current
	j := len(events) - 1
	for di := len(days) - 1; di >= 0; di-- {
		end := days[di].AddDate(0, 0, 1)
		for ; j >= 0 && !events[j].At.Before(end); j-- {
			e := events[j]
			k := sevIndex(e.Severity)
			switch e.Kind {
			case store.EventNew:
				counts[k]--
			case store.EventFixed:
				counts[k]++
			case store.EventChanged:
				if p := prev[j]; p >= 0 && events[p].Kind != store.EventFixed {
					counts[k]--
					counts[sevIndex(events[p].Severity)]++
				} else {
					exact = false
				}
			}
		}
		for i := range counts {
			series[i][di] = max(counts[i], 0)
		}
	}
	return series, exact
}

// imageName picks the name people know an image by: its most recently
// seen tagged reference.
func imageName(im *store.Image) (name, registry string) {
	var best *store.ImageRef
	for i := range im.Refs {
		r := &im.Refs[i]
		if best == nil || (r.Tag != "" && best.Tag == "") || (r.Tag != "" == (best.Tag != "") && r.LastSeen.After(best.LastSeen)) {
			best = r
		}
	}
	if best == nil {
		return shortDigest(im.Digest), ""
	}
	n := best.Repository
	if best.Tag != "" {
		n += ":" + best.Tag
	} else {
		n += "@" + shortDigest(im.Digest)
	}
	return n, best.Registry
}

func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

func (c *Console) topImages(ctx context.Context) (barChart, error) {
	ims, _, err := c.st.ListImages(ctx, store.ImageFilter{}, store.Page{Limit: 8, Sort: "-risk"})
	if err != nil {
		return barChart{}, err
	}
	ch := barChart{W: 560, LabelW: 210, RowH: 30, Title: "Images with the most severe open findings"}
	ch.BarW = ch.W - ch.LabelW - 44
	scale := 0
	for _, im := range ims {
		scale = max(scale, im.Counts.Total())
	}
	for _, im := range ims {
		if im.Counts.Total() == 0 {
			continue
		}
		full, err := c.st.GetImage(ctx, im.Digest)
		if err != nil {
			return barChart{}, err
		}
		name, reg := imageName(full)
		row := barRow{Y: float64(len(ch.Rows)) * ch.RowH, Label: truncate(name, 30), Sub: truncate(reg, 34),
			Href: c.url("/images/" + im.Digest), Total: im.Counts.Total()}
		cs := countsOf(im.Counts)
		row.Segs = stackBar(sevKeys, sevLabels, cs[:], scale, ch.BarW)
		row.ValueX = ch.LabelW + 6
		for _, s := range row.Segs {
			row.ValueX = ch.LabelW + s.X + s.W + 6
		}
		ch.Rows = append(ch.Rows, row)
	}
	ch.H = float64(len(ch.Rows)) * ch.RowH
	return ch, nil
}

// kevRows groups the open known-exploited findings by vulnerability.
func (c *Console) kevRows(ctx context.Context, n int) ([]kevRow, int, error) {
	fs, _, err := c.st.ListFindings(ctx, store.FindingFilter{KEV: true}, store.Page{Limit: 1000, Sort: "-severity"})
	if err != nil {
		return nil, 0, err
	}
	type agg struct {
		row    kevRow
		images map[string]bool
		pkgs   map[string]bool
	}
	by := map[string]*agg{}
	for _, f := range fs {
		a := by[f.VulnID]
		if a == nil {
			a = &agg{row: kevRow{ID: f.VulnID, Summary: f.Summary, Severity: f.Severity}, images: map[string]bool{}, pkgs: map[string]bool{}}
			by[f.VulnID] = a
		}
		a.row.CVSS = max(a.row.CVSS, f.CVSSScore)
		a.images[f.ImageDigest] = true
		a.pkgs[f.Package] = true
	}
	rows := make([]kevRow, 0, len(by))
	for _, a := range by {
		a.row.Images = len(a.images)
		for p := range a.pkgs {
			a.row.Packages = append(a.row.Packages, p)
		}
		slices.Sort(a.row.Packages)
		rows = append(rows, a.row)
	}
	slices.SortFunc(rows, func(a, b kevRow) int {
		return cmp.Or(cmp.Compare(b.Severity, a.Severity), cmp.Compare(b.Images, a.Images), cmp.Compare(a.ID, b.ID))
	})
	total := len(rows)
	if len(rows) > n {
		rows = rows[:n]
	}
	return rows, total, nil
}

func (c *Console) dbInfo(ctx context.Context, now time.Time) (dbInfo, error) {
	var d dbInfo
	if c.deps.DBStatus != nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := c.deps.DBStatus(cctx)
		cancel()
		if err != nil {
			c.log.WarnContext(ctx, "console: vulnerability database status", "err", err)
		} else if st != nil {
			d.Known, d.Built, d.Vulns, d.Sources = !st.Built.IsZero(), st.Built, st.Vulnerabilities, st.Sources
		}
	}
	if !d.Known {
		scans, _, err := c.st.ListScans(ctx, store.ScanFilter{Status: store.ScanSucceeded}, store.Page{Limit: 1})
		if err != nil {
			return d, err
		}
		if len(scans) > 0 && !scans[0].DBBuilt.IsZero() {
			d.Known, d.Built, d.FromScan = true, scans[0].DBBuilt, true
		}
	}
	if d.Known {
		d.Age = max(now.Sub(d.Built), 0)
		switch {
		case d.Age > 30*24*time.Hour:
			d.Level = "bad"
		case d.Age > 7*24*time.Hour:
			d.Level = "warn"
		default:
			d.Level = "ok"
		}
	}
	return d, nil
}
