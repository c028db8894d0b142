package console

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

func TestTrendSeries(t *testing.T) {
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	days := []time.Time{day0, day0.AddDate(0, 0, 1), day0.AddDate(0, 0, 2), day0.AddDate(0, 0, 3)}
	at := func(d, h int) time.Time { return day0.AddDate(0, 0, d).Add(time.Duration(h) * time.Hour) }
	ev := func(id, finding int64, kind store.FindingEventKind, sev vulndb.Severity, when time.Time) store.FindingEvent {
		return store.FindingEvent{ID: id, FindingID: finding, Kind: kind, Severity: sev, At: when}
	}
	crit, high, med, unk := vulndb.SeverityCritical, vulndb.SeverityHigh, vulndb.SeverityMedium, vulndb.SeverityUnknown
	for _, tc := range []struct {
		name    string
		current sevCounts
		events  []store.FindingEvent
		want    [5][]int
		exact   bool
	}{{
		name:    "no events: flat",
		current: sevCounts{1, 2, 0, 0, 3},
		want:    [5][]int{{1, 1, 1, 1}, {2, 2, 2, 2}, {0, 0, 0, 0}, {0, 0, 0, 0}, {3, 3, 3, 3}},
		exact:   true,
	}, {
		name:    "new then fixed",
		current: sevCounts{0, 1, 0, 0, 0},
		events: []store.FindingEvent{
			ev(1, 10, store.EventNew, high, at(1, 5)),
			ev(2, 11, store.EventNew, crit, at(1, 6)),
			ev(3, 11, store.EventFixed, crit, at(2, 9)),
		},
		want:  [5][]int{{0, 1, 0, 0}, {0, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
		exact: true,
	}, {
		name:    "severity changed by a re-match, previous event in the window",
		current: sevCounts{0, 1, 1, 0, 0},
		events: []store.FindingEvent{
			ev(1, 10, store.EventNew, unk, at(0, 1)),
			ev(2, 11, store.EventNew, unk, at(0, 1)),
			ev(3, 10, store.EventChanged, high, at(2, 3)),
			ev(4, 11, store.EventChanged, med, at(3, 3)),
		},
		want:  [5][]int{{0, 0, 0, 0}, {0, 0, 1, 1}, {0, 0, 0, 1}, {0, 0, 0, 0}, {2, 2, 1, 0}},
		exact: true,
	}, {
		name:    "changed twice",
		current: sevCounts{1, 0, 0, 0, 0},
		events: []store.FindingEvent{
			ev(1, 10, store.EventNew, med, at(0, 1)),
			ev(2, 10, store.EventChanged, high, at(1, 1)),
			ev(3, 10, store.EventChanged, crit, at(2, 1)),
		},
		want:  [5][]int{{0, 0, 1, 1}, {0, 1, 0, 0}, {1, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
		exact: true,
	}, {
		name:    "changed, previous event before the window: counted at today's severity",
		current: sevCounts{0, 1, 0, 0, 0},
		events:  []store.FindingEvent{ev(7, 10, store.EventChanged, high, at(2, 1))},
		want:    [5][]int{{0, 0, 0, 0}, {1, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
		exact:   false,
	}, {
		name:    "reopened after a fix",
		current: sevCounts{0, 1, 0, 0, 0},
		events: []store.FindingEvent{
			ev(1, 10, store.EventNew, high, at(0, 1)),
			ev(2, 10, store.EventFixed, high, at(1, 1)),
			ev(3, 10, store.EventNew, high, at(3, 1)),
		},
		want:  [5][]int{{0, 0, 0, 0}, {1, 0, 0, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
		exact: true,
	}, {
		name:    "inconsistent input never goes negative",
		current: sevCounts{0, 0, 0, 0, 0},
		events:  []store.FindingEvent{ev(1, 10, store.EventNew, high, at(2, 1))},
		want:    [5][]int{{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}},
		exact:   true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, exact := trendSeries(tc.current, tc.events, days)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
			if exact != tc.exact {
				t.Errorf("exact = %v, want %v", exact, tc.exact)
			}
		})
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, top, step int }{
		{0, 4, 1}, {3, 4, 1}, {5, 5, 1}, {9, 10, 2}, {10, 10, 2}, {17, 20, 5}, {99, 100, 20}, {420, 500, 100}, {466, 500, 100},
		{1000, 1000, 200}, {1001, 1250, 250}, {123456, 125000, 25000},
	} {
		top, step := niceCeil(tc.in)
		if top < tc.in || top%step != 0 || top/step > 6 {
			t.Errorf("niceCeil(%d) = %d, %d: not a small whole number of steps covering the max", tc.in, top, step)
		}
		if top != tc.top || step != tc.step {
			t.Errorf("niceCeil(%d) = %d step %d, want %d step %d", tc.in, top, step, tc.top, tc.step)
		}
	}
}

func TestStackedArea(t *testing.T) {
	day0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var days []time.Time
	for i := range 30 {
		days = append(days, day0.AddDate(0, 0, i))
	}
	series := make([][]int, 5)
	for i := range series {
		for d := range 30 {
			series[i] = append(series[i], (i+1)*d)
		}
	}
	c := stackedArea(days, sevKeys, sevLabels, series, 760, 240)
	if c.Max != 15*29 {
		t.Errorf("max %d", c.Max)
	}
	if len(c.Layers) != 5 || len(c.Cols) != 30 {
		t.Fatalf("%d layers, %d columns", len(c.Layers), len(c.Cols))
	}
	for i, l := range c.Layers {
		if !strings.HasPrefix(l.Area, "M") || !strings.HasSuffix(l.Area, "Z") {
			t.Errorf("layer %s area %q", l.Key, l.Area)
		}
		if l.Last != (i+1)*29 {
			t.Errorf("layer %s last %d", l.Key, l.Last)
		}
		vals := strings.Split(l.Values, ",")
		if len(vals) != 30 || vals[29] != strconv.Itoa((i+1)*29) {
			t.Errorf("layer %s values %q", l.Key, l.Values)
		}
		// Only numbers and path commands: the template inserts it as an
		// attribute value.
		if strings.Trim(l.Area, "MLZ0123456789. -") != "" {
			t.Errorf("layer %s path holds other characters: %q", l.Key, l.Area)
		}
	}
	for _, tk := range append(c.XTicks, c.YTicks...) {
		if tk.Pos < 0 || tk.Pos > c.W {
			t.Errorf("tick %+v outside the chart", tk)
		}
	}
	if c.XTicks[0].Label != "Mar 30" || c.XTicks[0].Anchor != "end" {
		t.Errorf("last x label %+v", c.XTicks[0])
	}
	if !strings.Contains(c.Cols[29].Title, "435 open") {
		t.Errorf("last column title %q", c.Cols[29].Title)
	}
	if e := stackedArea(nil, sevKeys, sevLabels, nil, 100, 100); !e.Empty {
		t.Error("no days should be an empty chart")
	}
}

func TestDonutAndBars(t *testing.T) {
	d := donut([]string{"a", "b"}, []string{"A", "B"}, []int{464, 2}, 148, "t")
	if d.Segs[0].Pct != 99 || d.Segs[1].Pct != 0 {
		t.Errorf("percentages %d %d: 464 of 466 must not read 100%%", d.Segs[0].Pct, d.Segs[1].Pct)
	}
	circ := 2 * math.Pi * d.R
	for _, s := range d.Segs {
		var arc, gap float64
		for i, f := range strings.Fields(s.Dash) {
			v, _ := strconv.ParseFloat(f, 64)
			if i == 0 {
				arc = v
			} else {
				gap = v
			}
		}
		if math.Abs(arc+gap-circ) > 0.2 {
			t.Errorf("segment %s dash %q does not span the circle (%.1f)", s.Key, s.Dash, circ)
		}
	}
	if z := donut([]string{"a"}, []string{"A"}, []int{0}, 100, ""); z.Total != 0 || z.Segs[0].Dash != "" {
		t.Errorf("empty donut %+v", z)
	}
	segs := stackBar(sevKeys, sevLabels, []int{1, 0, 3, 0, 4}, 16, 160)
	if len(segs) != 3 || segs[0].W != 10 || segs[1].X != 10 || segs[1].W != 30 || segs[2].W != 40 {
		t.Errorf("bar segments %+v", segs)
	}
	if stackBar(sevKeys, sevLabels, []int{1}, 0, 100) != nil {
		t.Error("a zero scale should draw nothing")
	}
	if s := spark([]int{0, 5, 10}, 100, 20); !strings.HasPrefix(s.Line, "M0 19") || !strings.HasSuffix(s.Area, "Z") {
		t.Errorf("sparkline %+v", s)
	}
}
