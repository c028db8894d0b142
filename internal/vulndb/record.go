package vulndb

import (
	"slices"
	"time"

	"github.com/google/osv-scalibr/semantic"
)

// record is one advisory normalised from any input format. Records are what
// a source keeps on disk; the index is compiled from them.
type record struct {
	ID      string   `json:"id"`
	Aliases []string `json:"aliases,omitempty"`
	// Related IDs are not the same vulnerability (OSV "related"), but
	// AlmaLinux lists the CVEs an advisory fixes there: they drive KEV, CVSS
	// and EPSS enrichment when the record has no CVE alias.
	Related    []string   `json:"related,omitempty"`
	Summary    string     `json:"summary,omitempty"`
	Details    string     `json:"details,omitempty"`
	Severity   Severity   `json:"severity,omitempty"` // the record's own rating
	CVSS       []CVSS     `json:"cvss,omitempty"`
	Published  time.Time  `json:"published,omitzero"`
	Modified   time.Time  `json:"modified,omitzero"`
	References []string   `json:"references,omitempty"`
	Affected   []affected `json:"affected,omitempty"`
}

// affected is one package an advisory applies to.
type affected struct {
	// Ecosystem as written in the advisory ("Debian:12", "PyPI").
	Ecosystem string     `json:"ecosystem"`
	Name      string     `json:"name"`
	Ranges    []interval `json:"ranges,omitempty"`
	// Versions are affected versions not already inside Ranges.
	Versions []string `json:"versions,omitempty"`
	// Imports are the vulnerable packages of a Go module (go-vulndb's
	// ecosystem_specific.imports). Empty means the whole module.
	Imports []goImport `json:"imports,omitempty"`
}

// goImport is one vulnerable package of a Go module.
type goImport struct {
	Path string `json:"path"`
	// GOOS and GOARCH limit the vulnerability to these platforms; empty
	// means every platform.
	GOOS   []string `json:"goos,omitempty"`
	GOARCH []string `json:"goarch,omitempty"`
	// Symbols are the vulnerable functions and methods ("Parse",
	// "Tokenizer.Next"); empty means every symbol of the package.
	Symbols []string `json:"symbols,omitempty"`
}

// interval is one affected version range. OSV event lists, npm semver
// ranges and "fixed in" tables all compile to intervals, so matching has a
// single code path. An empty bound is unbounded.
type interval struct {
	Lo     string `json:"lo,omitempty"`
	LoExcl bool   `json:"loExcl,omitempty"`
	Hi     string `json:"hi,omitempty"`
	HiIncl bool   `json:"hiIncl,omitempty"`
	// Fix is the version reported as fixing it ("" when none is known).
	Fix string `json:"fix,omitempty"`
	// Semver compares with SemVer 2.0 rules (OSV "SEMVER" ranges) instead of
	// the ecosystem's own.
	Semver bool `json:"semver,omitempty"`
}

// contains reports whether installed lies in iv. cmp(bound) compares the
// installed version with bound (-1, 0, +1); ok=false when either cannot be
// parsed, in which case the bound is treated as not satisfied.
func (iv interval) contains(cmp func(bound string, semver bool) (int, bool)) bool {
	if iv.Lo != "" {
		c, ok := cmp(iv.Lo, iv.Semver)
		if !ok || c < 0 || (c == 0 && iv.LoExcl) {
			return false
		}
	}
	if iv.Hi != "" {
		c, ok := cmp(iv.Hi, iv.Semver)
		if !ok || c > 0 || (c == 0 && !iv.HiIncl) {
			return false
		}
	}
	return true
}

// osvEvent is one OSV range event with exactly one field set.
type osvEvent struct {
	kind    string // "introduced", "fixed", "last_affected", "limit"
	version string
}

// eventsToIntervals compiles an OSV ECOSYSTEM or SEMVER event list. Events
// are sorted by version first (the schema asks consumers to), with
// introduced "0" lowest; when a version cannot be parsed the written order is
// kept.
func eventsToIntervals(base string, semver bool, events []osvEvent) []interval {
	evs := slices.Clone(events)
	parsed := make([]semantic.Version, len(evs))
	sortable := true
	for i, e := range evs {
		if e.kind == "introduced" && e.version == "0" {
			continue
		}
		parsed[i] = parseVersion(base, e.version, semver)
		if parsed[i] == nil {
			sortable = false
		}
	}
	if sortable {
		idx := make([]int, len(evs))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			pa, pb := parsed[a], parsed[b]
			switch {
			case pa == nil && pb == nil:
				return 0
			case pa == nil: // introduced "0"
				return -1
			case pb == nil:
				return 1
			}
			c, err := pa.Compare(pb)
			if err != nil {
				return 0
			}
			return c
		})
		sorted := make([]osvEvent, len(evs))
		for i, j := range idx {
			sorted[i] = evs[j]
		}
		evs = sorted
	}
	var out []interval
	open := false
	var cur interval
	for _, e := range evs {
		switch e.kind {
		case "introduced":
			if !open {
				cur = interval{Semver: semver}
				if e.version != "0" {
					cur.Lo = e.version
				}
				open = true
			}
		case "fixed", "last_affected", "limit":
			if !open {
				continue
			}
			cur.Hi = e.version
			switch e.kind {
			case "fixed":
				cur.Fix = e.version
			case "last_affected":
				cur.HiIncl = true
			}
			out = append(out, cur)
			open = false
		}
	}
	if open {
		out = append(out, cur)
	}
	return out
}

// rangesCover returns a test of whether a version lies in ranges, with the
// bounds parsed once: import-time filtering of long "versions" lists
// (PyPA enumerates hundreds) would otherwise parse every bound per version.
func rangesCover(base string, ranges []interval) func(v string) bool {
	type pb struct {
		lo, hi semantic.Version
		iv     interval
		ok     bool
	}
	parsed := make([]pb, len(ranges))
	for i, iv := range ranges {
		p := pb{iv: iv, ok: true}
		if iv.Lo != "" {
			if p.lo = parseVersion(base, iv.Lo, iv.Semver); p.lo == nil {
				p.ok = false
			}
		}
		if iv.Hi != "" {
			if p.hi = parseVersion(base, iv.Hi, iv.Semver); p.hi == nil {
				p.ok = false
			}
		}
		parsed[i] = p
	}
	return func(v string) bool {
		var eco, sem semantic.Version
		for _, p := range parsed {
			if !p.ok {
				continue
			}
			var x semantic.Version
			if p.iv.Semver {
				if sem == nil {
					sem = parseVersion(base, v, true)
				}
				x = sem
			} else {
				if eco == nil {
					eco = parseVersion(base, v, false)
				}
				x = eco
			}
			if x == nil {
				return false
			}
			if p.lo != nil {
				c, err := x.Compare(p.lo)
				if err != nil || c < 0 || (c == 0 && p.iv.LoExcl) {
					continue
				}
			}
			if p.hi != nil {
				c, err := x.Compare(p.hi)
				if err != nil || c > 0 || (c == 0 && !p.iv.HiIncl) {
					continue
				}
			}
			return true
		}
		return false
	}
}
