package vulndb

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// npm semver ranges (https://github.com/npm/node-semver#ranges), compiled to
// intervals so npm advisories match through the same code as OSV ones.
//
// One deliberate difference from node-semver: a prerelease version is
// compared in plain SemVer order against every comparator, instead of only
// satisfying comparators on the same major.minor.patch. For vulnerability
// matching that errs on reporting, never on hiding.

var npmOpSpace = regexp.MustCompile(`(<=|>=|<|>|=|~>|~|\^)\s+`)

// npmRangeIntervals compiles a range set ("<1.6.5 || >=2.0.0 <2.1.7") to
// intervals. An empty or "*" range is every version.
func npmRangeIntervals(rng string) ([]interval, error) {
	if len(rng) > 4096 {
		return nil, fmt.Errorf("range of %d bytes is too long", len(rng))
	}
	var out []interval
	for _, set := range strings.Split(rng, "||") {
		set = strings.TrimSpace(set)
		iv, ok, err := npmComparatorSet(set)
		if err != nil {
			return nil, fmt.Errorf("range %q: %w", truncate(rng), err)
		}
		if ok {
			out = append(out, iv)
		}
	}
	return out, nil
}

// npmComparatorSet intersects the comparators of one set; ok is false when
// the intersection is empty.
func npmComparatorSet(set string) (interval, bool, error) {
	if a, b, ok := strings.Cut(set, " - "); ok {
		lo, err := parsePartial(strings.TrimSpace(a))
		if err != nil {
			return interval{}, false, err
		}
		hi, err := parsePartial(strings.TrimSpace(b))
		if err != nil {
			return interval{}, false, err
		}
		iv := interval{}
		if lo.n > 0 {
			iv.Lo = lo.fill()
		}
		switch {
		case hi.n == 3:
			iv.Hi, iv.HiIncl = hi.fill(), true
		case hi.n > 0:
			iv.Hi = hi.bump(hi.n - 1)
		}
		return iv, nonEmpty(iv), nil
	}
	iv := interval{}
	for _, c := range strings.Fields(npmOpSpace.ReplaceAllString(set, "$1")) {
		civ, ok, err := npmComparator(c)
		if err != nil {
			return interval{}, false, err
		}
		if !ok {
			return interval{}, false, nil
		}
		iv = intersect(iv, civ)
	}
	return iv, nonEmpty(iv), nil
}

func npmComparator(c string) (interval, bool, error) {
	op := ""
	for _, o := range []string{"<=", ">=", "~>", "<", ">", "=", "~", "^"} {
		if strings.HasPrefix(c, o) {
			op, c = o, c[len(o):]
			break
		}
	}
	p, err := parsePartial(c)
	if err != nil {
		return interval{}, false, err
	}
	switch op {
	case "", "=":
		if p.n == 0 {
			return interval{}, true, nil
		}
		if p.n == 3 {
			v := p.fill()
			return interval{Lo: v, Hi: v, HiIncl: true}, true, nil
		}
		return interval{Lo: p.fill(), Hi: p.bump(p.n - 1)}, true, nil
	case ">":
		if p.n == 0 {
			return interval{}, false, nil
		}
		if p.n == 3 {
			return interval{Lo: p.fill(), LoExcl: true}, true, nil
		}
		return interval{Lo: strings.TrimSuffix(p.bump(p.n-1), "-0")}, true, nil
	case ">=":
		if p.n == 0 {
			return interval{}, true, nil
		}
		return interval{Lo: p.fill()}, true, nil
	case "<":
		if p.n == 0 {
			return interval{}, false, nil
		}
		if p.n == 3 {
			return interval{Hi: p.fill()}, true, nil
		}
		return interval{Hi: p.fill() + "-0"}, true, nil
	case "<=":
		if p.n == 0 {
			return interval{}, true, nil
		}
		if p.n == 3 {
			return interval{Hi: p.fill(), HiIncl: true}, true, nil
		}
		return interval{Hi: p.bump(p.n - 1)}, true, nil
	case "~", "~>":
		if p.n == 0 {
			return interval{}, true, nil
		}
		level := 1 // ~1.2.3 and ~1.2 allow patch changes
		if p.n == 1 {
			level = 0
		}
		return interval{Lo: p.fill(), Hi: p.bump(level)}, true, nil
	case "^":
		if p.n == 0 {
			return interval{}, true, nil
		}
		// The first non-zero of major.minor.patch may not change.
		level := 0
		switch {
		case p.nums[0] != 0 || p.n == 1:
			level = 0
		case p.nums[1] != 0 || p.n == 2:
			level = 1
		default:
			level = 2
		}
		return interval{Lo: p.fill(), Hi: p.bump(level)}, true, nil
	}
	return interval{}, false, fmt.Errorf("bad comparator %q", truncate(c))
}

// partial is a possibly incomplete version: n numeric parts, then "x".
type partial struct {
	n    int
	nums [3]uint64
	pre  string // prerelease and build, with their leading "-" / "+"
}

func parsePartial(s string) (partial, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "="), "v")
	var p partial
	if s == "" || s == "*" || s == "x" || s == "X" {
		return p, nil
	}
	core := s
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		core, p.pre = s[:i], s[i:]
	}
	parts := strings.Split(core, ".")
	if len(parts) > 3 {
		return p, fmt.Errorf("bad version %q", truncate(s))
	}
	wild := false
	for i, part := range parts {
		if part == "x" || part == "X" || part == "*" {
			wild = true
			continue
		}
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil || wild {
			return p, fmt.Errorf("bad version %q", truncate(s))
		}
		p.nums[i] = n
		p.n = i + 1
	}
	if p.n < 3 {
		p.pre = "" // "1.2-beta" is not a thing in npm ranges
	}
	return p, nil
}

// fill writes the version with missing parts as zeros.
func (p partial) fill() string {
	return fmt.Sprintf("%d.%d.%d%s", p.nums[0], p.nums[1], p.nums[2], p.pre)
}

// bump is the lowest prerelease of the next version at level (0 major,
// 1 minor, 2 patch): the exclusive upper bound of an x-range.
func (p partial) bump(level int) string {
	n := p.nums
	n[level]++
	for i := level + 1; i < 3; i++ {
		n[i] = 0
	}
	return fmt.Sprintf("%d.%d.%d-0", n[0], n[1], n[2])
}

func semverCmp(a, b string) int {
	c, _ := semantic.ParseSemverVersion(a).CompareStr(b)
	return c
}

// intersect narrows a to the part also inside b.
func intersect(a, b interval) interval {
	if b.Lo != "" {
		if a.Lo == "" {
			a.Lo, a.LoExcl = b.Lo, b.LoExcl
		} else if c := semverCmp(b.Lo, a.Lo); c > 0 || (c == 0 && b.LoExcl) {
			a.Lo, a.LoExcl = b.Lo, b.LoExcl
		}
	}
	if b.Hi != "" {
		if a.Hi == "" {
			a.Hi, a.HiIncl = b.Hi, b.HiIncl
		} else if c := semverCmp(b.Hi, a.Hi); c < 0 || (c == 0 && !b.HiIncl) {
			a.Hi, a.HiIncl = b.Hi, b.HiIncl
		}
	}
	return a
}

func nonEmpty(iv interval) bool {
	if iv.Lo == "" || iv.Hi == "" {
		return true
	}
	c := semverCmp(iv.Lo, iv.Hi)
	return c < 0 || (c == 0 && !iv.LoExcl && iv.HiIncl)
}

// npmFixes sets each vulnerable interval's Fix from the patched range set:
// the lowest patched version at or above the interval's end.
func npmFixes(vuln, patched []interval) {
	for i := range vuln {
		iv := &vuln[i]
		iv.Semver = true
		if iv.Hi == "" {
			continue
		}
		best := ""
		for _, p := range patched {
			cand := p.Lo
			if cand == "" || p.LoExcl {
				continue
			}
			c := semverCmp(cand, iv.Hi)
			if c < 0 || (c == 0 && iv.HiIncl) {
				// also accept the interval's exclusive end when patched covers it
				continue
			}
			if best == "" || semverCmp(cand, best) < 0 {
				best = cand
			}
		}
		if best == "" && !iv.HiIncl && !strings.HasSuffix(iv.Hi, "-0") {
			for _, p := range patched {
				if p.contains(func(b string, _ bool) (int, bool) { return semverCmp(iv.Hi, b), true }) {
					best = iv.Hi
					break
				}
			}
		}
		iv.Fix = best
	}
	for i := range patched {
		patched[i].Semver = true
	}
}
