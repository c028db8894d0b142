package console

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The charts are computed here as geometry (numbers and path strings made
// only of numbers and path commands) and drawn by the "chart-*" templates,
// so every label and title still goes through html/template's escaping.

// tick is an axis label at a position along the axis.
type tick struct {
	Pos   float64
	Label string
	// Anchor is the SVG text-anchor: the outermost labels are aligned
	// inwards so they are not cut at the chart's edges.
	Anchor string
}

// areaLayer is one band of a stacked area chart.
type areaLayer struct {
	Key   string // severity key, also the CSS class suffix
	Label string
	// Area is the band's polygon, Line its upper edge.
	Area, Line string
	Last       int
	// Values are the layer's own values, comma-separated (for tests and
	// for anyone reading the markup).
	Values string
}

// hoverCol is an invisible column over one x position carrying a tooltip.
type hoverCol struct {
	X, W  float64
	Title string
}

// areaChart is a stacked area chart over days.
type areaChart struct {
	W, H                     float64
	Left, Right, Top, Bottom float64
	Layers                   []areaLayer
	YTicks, XTicks           []tick
	Cols                     []hoverCol
	Max                      int
	Empty                    bool
	// Title and Desc are the accessible name and description.
	Title, Desc string
}

func fmtF(x float64) string { return strconv.FormatFloat(math.Round(x*10)/10, 'f', -1, 64) }

// niceCeil picks the axis top and step: the smallest step of 1, 2, 2.5
// or 5 times a power of ten that covers max in at most five intervals.
func niceCeil(max int) (top, step int) {
	if max <= 4 {
		return 4, 1
	}
	for mag := 1; ; mag *= 10 {
		for _, m := range []float64{1, 2, 2.5, 5} {
			s := m * float64(mag)
			if s != math.Trunc(s) {
				continue
			}
			n := int(math.Ceil(float64(max) / s))
			if n <= 5 {
				return n * int(s), int(s)
			}
		}
	}
}

// stackedArea lays out series (one per layer, bottom first, each with one
// value per day) as a stacked area chart of w×h.
func stackedArea(days []time.Time, keys, labels []string, series [][]int, w, h float64) areaChart {
	c := areaChart{W: w, H: h, Left: 44, Right: w - 12, Top: 10, Bottom: h - 26}
	n := len(days)
	if n == 0 || len(series) == 0 {
		c.Empty = true
		return c
	}
	totals := make([]int, n)
	for _, s := range series {
		for i := 0; i < n && i < len(s); i++ {
			totals[i] += s[i]
		}
	}
	for _, t := range totals {
		c.Max = max(c.Max, t)
	}
	top, step := niceCeil(c.Max)
	pw, ph := c.Right-c.Left, c.Bottom-c.Top
	x := func(i int) float64 {
		if n == 1 {
			return c.Left + pw/2
		}
		return c.Left + pw*float64(i)/float64(n-1)
	}
	y := func(v int) float64 { return c.Bottom - ph*float64(v)/float64(top) }
	for v := 0; v <= top; v += step {
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: strconv.Itoa(v)})
	}
	every := max(1, (n+5)/6)
	for i := n - 1; i >= 0; i -= every {
		anchor := "middle"
		switch {
		case i == n-1 && n > 1:
			anchor = "end"
		case x(i)-c.Left < 20:
			anchor = "start"
		}
		c.XTicks = append(c.XTicks, tick{Pos: x(i), Label: days[i].Format("Jan 2"), Anchor: anchor})
	}
	lower := make([]int, n)
	for li, s := range series {
		upper := make([]int, n)
		for i := range n {
			v := 0
			if i < len(s) {
				v = s[i]
			}
			upper[i] = lower[i] + v
		}
		var area, line strings.Builder
		for i := range n {
			cmd := "L"
			if i == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&area, "%s%s %s ", cmd, fmtF(x(i)), fmtF(y(upper[i])))
			fmt.Fprintf(&line, "%s%s %s ", cmd, fmtF(x(i)), fmtF(y(upper[i])))
		}
		for i := n - 1; i >= 0; i-- {
			fmt.Fprintf(&area, "L%s %s ", fmtF(x(i)), fmtF(y(lower[i])))
		}
		area.WriteString("Z")
		last := 0
		if len(s) > 0 {
			last = s[min(n, len(s))-1]
		}
		vals := make([]string, n)
		for i := range n {
			vals[i] = strconv.Itoa(upper[i] - lower[i])
		}
		c.Layers = append(c.Layers, areaLayer{Key: keys[li], Label: labels[li], Area: area.String(),
			Line: strings.TrimSpace(line.String()), Last: last, Values: strings.Join(vals, ",")})
		lower = upper
	}
	colW := pw / float64(max(1, n-1))
	if n == 1 {
		colW = pw
	}
	for i := range n {
		var parts []string
		for li := len(series) - 1; li >= 0; li-- {
			v := 0
			if i < len(series[li]) {
				v = series[li][i]
			}
			parts = append(parts, fmt.Sprintf("%d %s", v, strings.ToLower(labels[li])))
		}
		c.Cols = append(c.Cols, hoverCol{X: math.Max(c.Left, x(i)-colW/2), W: colW,
			Title: fmt.Sprintf("%s — %d open: %s", days[i].Format("Mon Jan 2"), totals[i], strings.Join(parts, ", "))})
	}
	c.Cols[n-1].W = c.Right - c.Cols[n-1].X
	return c
}

// donutSeg is one arc of a donut, drawn as a dashed circle stroke.
type donutSeg struct {
	Key, Label string
	Value      int
	Pct        int
	// Dash is "arc gap" for stroke-dasharray; Offset rotates it into place.
	Dash   string
	Offset string
}

// donutChart is a ring of segments with a number in the middle.
type donutChart struct {
	Size, R, Stroke float64
	Segs            []donutSeg
	Total           int
	Title           string
}

func donut(keys, labels []string, values []int, size float64, title string) donutChart {
	d := donutChart{Size: size, Stroke: size * 0.16, Title: title}
	d.R = (size - d.Stroke) / 2
	for _, v := range values {
		d.Total += v
	}
	circ := 2 * math.Pi * d.R
	acc := 0.0
	for i, v := range values {
		s := donutSeg{Key: keys[i], Label: labels[i], Value: v}
		if d.Total > 0 {
			frac := float64(v) / float64(d.Total)
			// Floor, so 464 of 466 reads 99%, not a misleading 100%.
			s.Pct = int(math.Floor(frac * 100))
			arc := frac * circ
			s.Dash = fmtF(arc) + " " + fmtF(circ-arc)
			// Start at 12 o'clock: the stroke begins at 3 o'clock, and
			// a positive offset moves the dash pattern backwards.
			s.Offset = fmtF(circ/4 - acc)
			acc += arc
		}
		d.Segs = append(d.Segs, s)
	}
	return d
}

// barSeg is one part of a stacked horizontal bar.
type barSeg struct {
	Key   string
	X, W  float64
	Value int
	Title string
}

// stackBar splits width w among counts (critical first), proportional to
// scale (the largest total shown, so bars compare across rows).
func stackBar(keys, labels []string, counts []int, scale int, w float64) []barSeg {
	if scale <= 0 {
		return nil
	}
	var segs []barSeg
	x := 0.0
	for i, v := range counts {
		if v <= 0 {
			continue
		}
		sw := w * float64(v) / float64(scale)
		segs = append(segs, barSeg{Key: keys[i], X: x, W: math.Max(sw, 1.5), Value: v,
			Title: fmt.Sprintf("%d %s", v, strings.ToLower(labels[i]))})
		x += sw
	}
	return segs
}

// barRow is one row of a horizontal bar chart.
type barRow struct {
	Y      float64
	Label  string
	Sub    string
	Href   string
	Total  int
	Segs   []barSeg
	ValueX float64
}

// barChart is a horizontal stacked bar chart with labels on the left.
type barChart struct {
	W, H, LabelW, BarW, RowH float64
	Rows                     []barRow
	Title                    string
}

// sparkline is a tiny line with the area under it.
type sparkline struct {
	W, H       float64
	Line, Area string
}

func spark(values []int, w, h float64) sparkline {
	s := sparkline{W: w, H: h}
	n := len(values)
	if n < 2 {
		return s
	}
	mx := 1
	for _, v := range values {
		mx = max(mx, v)
	}
	var line strings.Builder
	for i, v := range values {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(&line, "%s%s %s ", cmd, fmtF(w*float64(i)/float64(n-1)), fmtF(h-1-(h-2)*float64(v)/float64(mx)))
	}
	s.Line = strings.TrimSpace(line.String())
	s.Area = s.Line + " L" + fmtF(w) + " " + fmtF(h) + " L0 " + fmtF(h) + " Z"
	return s
}
