package vulndb

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/google/osv-scalibr/semantic"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// query is how one inventory package is looked up.
type query struct {
	base, relKey, name, version string
	display                     string // name as shown in MatchedBy
	fam                         osFamily
	viaSource                   bool
	// goos and goarch are the package's platform ("" when unknown), for
	// advisories limited to some platforms.
	goos, goarch string
	// syms are the functions of the binary the package was found in (nil
	// when unknown), for Match.Reachability.
	syms *inventory.Symbols
}

// resolve decides how p is matched, or that it is not matched at all:
//
//   - OS packages of Debian, Ubuntu and Alpine are matched by their source
//     package (SourceName/SourceVersion), because those distributions write
//     advisories against source packages; RPM distributions' OSV records
//     (AlmaLinux) list binary packages, so RPMs are matched by name.
//   - A language package installed by the OS package manager (OSPackage
//     set) is not matched against its language ecosystem: distributions
//     backport fixes without changing the upstream version, so only the OS
//     package's advisories are right about it.
//   - OS advisories apply only to the release they name ("Debian:12");
//     a package whose release is unknown is not matched against them.
func resolve(p *inventory.Package) (query, bool) {
	eco := p.Ecosystem
	if eco == "" {
		eco = ecosystemOfType(p.Type)
	}
	if eco == "" {
		return query{}, false
	}
	base, rel := splitEcosystem(eco)
	q := query{base: base, fam: familyOf(base), name: p.Name, version: p.Version}
	if q.fam == notOS && p.OSPackage != "" {
		return query{}, false
	}
	if q.fam == osSource && p.SourceName != "" {
		q.name, q.viaSource = p.SourceName, true
		if p.SourceVersion != "" {
			q.version = p.SourceVersion
		}
	}
	if q.name == "" || q.version == "" {
		return query{}, false
	}
	if base == "Go" && strings.HasPrefix(q.version, "devel") {
		return query{}, false // a development toolchain has no release to compare
	}
	if q.fam != notOS {
		q.relKey = releaseKey(base, rel)
	}
	q.display = q.name
	q.goos, q.goarch = splitPlatform(p.Platform)
	q.syms = p.Symbols
	q.version = normalizeVersion(base, q.name, q.version)
	q.name = normalizeName(base, q.name)
	return q, true
}

// splitPlatform splits Package.Platform ("linux/amd64", "linux/arm/v7")
// into GOOS and GOARCH.
func splitPlatform(p string) (goos, goarch string) {
	goos, rest, _ := strings.Cut(p, "/")
	goarch, _, _ = strings.Cut(rest, "/")
	return goos, goarch
}

// Reachability levels, from Match.Reachability; the order matters (a
// higher level wins when aliased records are merged).
const (
	reachUnknown = iota
	reachModule
	reachPackage
	reachSymbol
)

// Match.Reachability values.
const (
	ReachabilityModule  = "module"
	ReachabilityPackage = "package"
	ReachabilitySymbol  = "symbol"
)

var reachNames = [...]string{reachUnknown: "", reachModule: ReachabilityModule, reachPackage: ReachabilityPackage, reachSymbol: ReachabilitySymbol}

// hit is one vulnerability found for one package, before de-duplication.
type hit struct {
	vuln    uint64
	eco     string // the advisory's ecosystem ("Debian:12"), for MatchedBy
	fixes   []string
	aliases []uint32
	reach   int
	symbols []string // vulnerable functions found in the binary, "pkg.Symbol"
}

// Match finds the vulnerabilities affecting pkgs. Each (package,
// vulnerability) is reported once: records from several sources that alias
// each other (CVE ↔ GHSA ↔ GO- ↔ PYSEC- ↔ RUSTSEC-) are merged into one
// Match, reported under the ID of the ecosystem's own database when there
// is one, with the other IDs added to Aliases. Matches come in package
// order. Vulnerabilities may be shared between Matches of one call: treat
// them as read-only.
func (db *DB) Match(ctx context.Context, pkgs []inventory.Package) ([]Match, error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.ix == nil {
		return nil, ErrClosed
	}
	// Packages are independent: split them over the available cores. Each
	// worker keeps its own caches, so nothing is shared but the mapping.
	workers := min(runtime.GOMAXPROCS(0), 8, (len(pkgs)+127)/128)
	if workers <= 1 {
		return db.newMatcher().run(ctx, pkgs, 0)
	}
	chunk := (len(pkgs) + workers - 1) / workers
	results := make([][]Match, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(pkgs))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w], errs[w] = db.newMatcher().run(ctx, pkgs[lo:hi], lo)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Match
	for _, r := range results {
		out = append(out, r...)
	}
	return out, nil
}

// matcher holds one worker's caches for one Match call: decoded
// vulnerabilities (an AlmaLinux advisory matches every binary package of
// its source) and parsed range bounds (binary packages of one Debian
// source package look up the same entries).
type matcher struct {
	db     *DB
	ix     *index
	cache  map[uint64]*Vulnerability
	bounds map[boundKey]semantic.Version
	ranges []interval
	// imports and symRefs hold the current entry's Go imports, decoded
	// in place (buffers reused across entries).
	imports []importView
	symRefs []uint64
}

// importView is one Go import of the entry being matched.
type importView struct {
	path             string // transient: a view into the mapping
	platformOK       bool   // allowed on the package's platform
	symStart, symEnd int    // its symbol refs in matcher.symRefs
}

type boundKey struct {
	base, v string // v is a transient view into the mapping: the map dies with the call
	semver  bool
}

func (db *DB) newMatcher() *matcher {
	return &matcher{db: db, ix: db.ix, cache: map[uint64]*Vulnerability{}, bounds: map[boundKey]semantic.Version{}}
}

func (m *matcher) run(ctx context.Context, pkgs []inventory.Package, offset int) ([]Match, error) {
	var out []Match
	for i := range pkgs {
		if i%128 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		ms, err := m.one(&pkgs[i], offset+i)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

// comparer compares one installed version with range bounds.
func (m *matcher) comparer(base, installed string) func(bound string, semver bool) (int, bool) {
	var eco, sem semantic.Version
	ecoDone, semDone := false, false
	return func(bound string, semver bool) (int, bool) {
		var v semantic.Version
		if semver {
			if !semDone {
				sem, semDone = semantic.ParseSemverVersion(installed), true
			}
			v = sem
		} else {
			if !ecoDone {
				eco, ecoDone = parseVersion(base, installed, false), true
			}
			v = eco
		}
		if v == nil {
			return 0, false
		}
		k := boundKey{base: base, v: bound, semver: semver}
		b, ok := m.bounds[k]
		if !ok {
			b = parseVersion(base, bound, semver)
			m.bounds[k] = b
		}
		if b == nil {
			return 0, false
		}
		c, err := v.Compare(b)
		if err != nil {
			return 0, false
		}
		return c, true
	}
}

func (m *matcher) one(p *inventory.Package, pkgIndex int) ([]Match, error) {
	ix := m.ix
	q, ok := resolve(p)
	if !ok {
		return nil, nil
	}
	ents, n, err := ix.lookup(q.base, q.name)
	if err != nil || n == 0 {
		return nil, err
	}
	cmp := m.comparer(q.base, q.version)
	if _, ok := cmp("0", false); !ok && compareSupported(q.base) {
		m.db.log.Warn("cannot compare version: only exact versions listed by advisories can match",
			"package", p.Name, "version", q.version, "ecosystem", q.base)
	}
	var hits []hit
	d := &dec{b: ents}
	for k := 0; k < n && d.err == nil; k++ {
		vuln := d.uvarint()
		ecoRef := d.uvarint()
		relRef := d.uvarint()
		m.ranges = m.ranges[:0]
		nr := d.count()
		for r := 0; r < nr && d.err == nil; r++ {
			fl := d.byte()
			iv := interval{LoExcl: fl&ivLoExcl != 0, HiIncl: fl&ivHiIncl != 0, Semver: fl&ivSemver != 0}
			if fl&ivLo != 0 {
				iv.Lo = ix.transient(d.uvarint(), d)
			}
			if fl&ivHi != 0 {
				iv.Hi = ix.transient(d.uvarint(), d)
			}
			if fl&ivFix != 0 {
				iv.Fix = ix.transient(d.uvarint(), d)
			}
			m.ranges = append(m.ranges, iv)
		}
		nver := d.count()
		listed := false
		for r := 0; r < nver && d.err == nil; r++ {
			v := ix.transient(d.uvarint(), d)
			if !listed && v == q.version {
				listed = true
			} else if !listed {
				if c, ok := cmp(v, false); ok && c == 0 {
					listed = true
				}
			}
		}
		platformOK := m.decodeImports(d, &q)
		if d.err != nil {
			break
		}
		if !platformOK {
			// Every vulnerable package of the entry is limited to other
			// platforms ("Windows only"): govulncheck skips it too.
			continue
		}
		if q.fam != notOS {
			if rel := ix.transient(relRef, d); rel != "" && rel != q.relKey {
				continue
			}
		}
		in := false
		var fixes []string
		for _, iv := range m.ranges {
			if iv.contains(cmp) {
				in = true
				if iv.Fix != "" {
					fixes = append(fixes, strings.Clone(iv.Fix))
				}
			}
		}
		if !in && !listed {
			continue
		}
		j := slices.IndexFunc(hits, func(h hit) bool { return h.vuln == vuln })
		if j < 0 {
			hits = append(hits, hit{vuln: vuln, eco: strings.Clone(ix.transient(ecoRef, d))})
			j = len(hits) - 1
		}
		hits[j].fixes = append(hits[j].fixes, fixes...)
		if q.syms != nil {
			reach, syms := m.reachability(&q, d)
			hits[j].reach = max(hits[j].reach, reach)
			hits[j].symbols = append(hits[j].symbols, syms...)
		}
	}
	if d.err != nil {
		return nil, corrupt("affected entries", d.err)
	}
	return m.group(q, pkgIndex, hits)
}

// decodeImports reads an entry's Go imports into m.imports and reports
// whether the entry applies on the package's platform, as govulncheck
// decides it: an entry without imports applies everywhere; otherwise at
// least one import must allow both the GOOS and the GOARCH (an empty list
// allows any; an unknown platform is allowed by any list).
func (m *matcher) decodeImports(d *dec, q *query) bool {
	m.imports, m.symRefs = m.imports[:0], m.symRefs[:0]
	n := d.count()
	ok := n == 0
	for i := 0; i < n && d.err == nil; i++ {
		iv := importView{path: m.ix.transient(d.uvarint(), d)}
		osOK := m.listAllows(d, q.goos)
		archOK := m.listAllows(d, q.goarch)
		iv.platformOK = osOK && archOK
		ok = ok || iv.platformOK
		ns := d.count()
		iv.symStart = len(m.symRefs)
		for k := 0; k < ns && d.err == nil; k++ {
			m.symRefs = append(m.symRefs, d.uvarint())
		}
		iv.symEnd = len(m.symRefs)
		m.imports = append(m.imports, iv)
	}
	return ok
}

// listAllows reads a GOOS or GOARCH list and reports whether it allows v.
func (m *matcher) listAllows(d *dec, v string) bool {
	n := d.count()
	ok := n == 0 || v == ""
	for i := 0; i < n && d.err == nil; i++ {
		ref := d.uvarint()
		if !ok && m.ix.transient(ref, d) == v {
			ok = true
		}
	}
	return ok
}

// reachability compares the current entry's imports (m.imports) with the
// functions of the package's binary, the way govulncheck does in binary
// mode: a vulnerable symbol present is "symbol" (an import without
// symbols means all of the package's; an entry without imports means all
// of the module's); a vulnerable package present without any of its
// vulnerable symbols is "package"; nothing of either is "module".
func (m *matcher) reachability(q *query, d *dec) (int, []string) {
	if len(m.imports) == 0 {
		if q.syms.HasModule(q.display) {
			return reachSymbol, nil
		}
		return reachModule, nil
	}
	level := reachModule
	var found []string
	for _, iv := range m.imports {
		if !iv.platformOK || !q.syms.HasPackage(iv.path) {
			continue
		}
		if iv.symStart == iv.symEnd {
			level = reachSymbol
			continue
		}
		level = max(level, reachPackage)
		for _, ref := range m.symRefs[iv.symStart:iv.symEnd] {
			if sym := m.ix.transient(ref, d); q.syms.HasFunc(iv.path, sym) {
				level = reachSymbol
				found = append(found, iv.path+"."+sym)
			}
		}
	}
	return level, found
}

// transient returns the string at ref as a view into the mapped index,
// valid only while the read lock is held: it is used for comparisons, and
// cloned before being kept.
func (ix *index) transient(ref uint64, d *dec) string {
	if ref > 1<<32 {
		d.err = errShort
		return ""
	}
	b, err := readStr(ix.str, uint32(ref))
	if err != nil {
		d.err = err
		return ""
	}
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// group merges hits that alias each other and builds the Matches.
func (m *matcher) group(q query, pkg int, hits []hit) ([]Match, error) {
	ix, cache := m.ix, m.cache
	if len(hits) == 0 {
		return nil, nil
	}
	parent := make([]int, len(hits))
	for i := range hits {
		parent[i] = i
		var err error
		if hits[i].aliases, err = ix.aliasRefs(hits[i].vuln, nil); err != nil {
			return nil, err
		}
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for i := range hits {
		for j := i + 1; j < len(hits); j++ {
			if intersects(hits[i].aliases, hits[j].aliases) {
				parent[find(j)] = find(i)
			}
		}
	}
	details := func(v uint64) (*Vulnerability, error) {
		if x, ok := cache[v]; ok {
			return x, nil
		}
		x, err := ix.details(v)
		if err != nil {
			return nil, err
		}
		cache[v] = x
		return x, nil
	}
	var out []Match
	for root := range hits {
		if find(root) != root {
			continue
		}
		var members []*Vulnerability
		var memberHits []*hit
		for i := range hits {
			if find(i) == root {
				v, err := details(hits[i].vuln)
				if err != nil {
					return nil, err
				}
				members = append(members, v)
				memberHits = append(memberHits, &hits[i])
			}
		}
		best := 0
		for i := 1; i < len(members); i++ {
			if prefer(q.base, members[i].ID, members[best].ID) {
				best = i
			}
		}
		var fixes, syms []string
		reach := reachUnknown
		for _, h := range memberHits {
			fixes = append(fixes, h.fixes...)
			syms = append(syms, h.symbols...)
			reach = max(reach, h.reach)
		}
		mt := Match{
			Package:          pkg,
			Vulnerability:    merge(members, best),
			InstalledVersion: q.version,
			FixedVersions:    sortVersions(q.base, fixes),
			MatchedBy:        memberHits[best].eco + "/" + q.display,
			Reachability:     reachNames[reach],
			Symbols:          sortedUnique(syms),
		}
		if q.viaSource {
			mt.MatchedBy += " (source package)"
		}
		out = append(out, mt)
	}
	slices.SortFunc(out, func(a, b Match) int { return strings.Compare(a.Vulnerability.ID, b.Vulnerability.ID) })
	return out, nil
}

func intersects(a, b []uint32) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// prefer reports whether ID a should be reported instead of b: the
// ecosystem's own database first (GO- for Go, RUSTSEC- for crates.io,
// PYSEC- for PyPI, GHSA- elsewhere), then any non-CVE ID, then the
// smallest ID, so the choice is stable.
func prefer(base, a, b string) bool {
	np := nativePrefix(base)
	if na, nb := strings.HasPrefix(a, np), strings.HasPrefix(b, np); na != nb {
		return na
	}
	if ca, cb := strings.HasPrefix(a, "CVE-"), strings.HasPrefix(b, "CVE-"); ca != cb {
		return cb
	}
	return a < b
}

// merge reports members[best] with what the others add: their IDs and
// aliases, the highest severity when best has none, their CVSS when best
// has none, KEV and EPSS.
func merge(members []*Vulnerability, best int) *Vulnerability {
	if len(members) == 1 {
		return members[0]
	}
	b := *members[best]
	ids := slices.Clone(b.Aliases)
	for i, m := range members {
		if i == best {
			continue
		}
		ids = append(ids, m.ID)
		ids = append(ids, m.Aliases...)
		if b.Severity == SeverityUnknown {
			b.Severity = m.Severity
		}
		if len(b.CVSS) == 0 {
			b.CVSS = m.CVSS
		}
		if b.KEV == nil {
			b.KEV = m.KEV
		}
		b.EPSS = max(b.EPSS, m.EPSS)
	}
	b.Aliases = slices.DeleteFunc(sortedUnique(ids), func(s string) bool { return s == b.ID })
	return &b
}

// sortVersions sorts and de-duplicates versions in the ecosystem's order.
func sortVersions(base string, vs []string) []string {
	if len(vs) == 0 {
		return nil
	}
	vs = sortedUnique(vs)
	slices.SortStableFunc(vs, func(a, b string) int {
		pa := parseVersion(base, a, false)
		if pa == nil {
			return strings.Compare(a, b)
		}
		c, err := pa.CompareStr(b)
		if err != nil {
			return strings.Compare(a, b)
		}
		return c
	})
	return vs
}
