package intel

import (
	"context"
	"embed"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Match says which list entry an address hit.
type Match struct {
	List      string // list name
	Indicator string // the CIDR, IP or domain as listed
}

type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

type range4 struct {
	lo, hi uint32
	m      int32 // index into Set.matches
}

type range6 struct {
	lo, hi u128
	m      int32
}

// Set is an immutable lookup structure over every loaded indicator.
type Set struct {
	v4       []range4
	v6       []range6
	matches  []Match
	Problems []string // resolution failures and skipped lines, for the log
	Entries  int      // address ranges loaded (after resolving domains)
	Domains  int
}

// Lookup reports whether a is covered by any list entry. It does not allocate.
func (s *Set) Lookup(a netip.Addr) (Match, bool) {
	if s == nil || !a.IsValid() {
		return Match{}, false
	}
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		x := binary.BigEndian.Uint32(b[:])
		// First range whose lo > x; the candidate is the one before it.
		i := sort.Search(len(s.v4), func(i int) bool { return s.v4[i].lo > x })
		if i > 0 && x <= s.v4[i-1].hi {
			return s.matches[s.v4[i-1].m], true
		}
		return Match{}, false
	}
	b := a.As16()
	x := u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	i := sort.Search(len(s.v6), func(i int) bool { return x.less(s.v6[i].lo) })
	if i > 0 && !s.v6[i-1].hi.less(x) {
		return s.matches[s.v6[i-1].m], true
	}
	return Match{}, false
}

// Resolver resolves a domain to addresses (net.DefaultResolver fits).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// BuildOptions controls domain resolution.
type BuildOptions struct {
	Resolver Resolver      // nil: domains are not resolved (and reported)
	Timeout  time.Duration // per name; default 2s
	// Parallel bounds concurrent lookups (default 8).
	Parallel int
}

// Build turns parsed lists into a Set, resolving domain entries. Nested or
// overlapping prefixes are split so the most specific entry names the match
// (a resolved pool address inside a listed /0 still names the pool).
func Build(ctx context.Context, lists []*List, opts BuildOptions) *Set {
	s := &Set{}
	type pfx struct {
		p netip.Prefix
		m int32
	}
	var ps []pfx
	var domains []Entry
	for _, l := range lists {
		s.Problems = append(s.Problems, l.Problems...)
		for _, e := range l.Entries {
			if e.Domain != "" {
				domains = append(domains, e)
				continue
			}
			s.matches = append(s.matches, Match{List: e.List, Indicator: e.Prefix.String()})
			ps = append(ps, pfx{e.Prefix, int32(len(s.matches) - 1)})
		}
	}
	s.Domains = len(domains)
	if len(domains) > 0 {
		addrs, probs := resolveAll(ctx, domains, opts)
		s.Problems = append(s.Problems, probs...)
		for i, e := range domains {
			if len(addrs[i]) == 0 {
				continue
			}
			s.matches = append(s.matches, Match{List: e.List, Indicator: e.Domain})
			for _, a := range addrs[i] {
				a = a.Unmap().WithZone("")
				ps = append(ps, pfx{netip.PrefixFrom(a, a.BitLen()), int32(len(s.matches) - 1)})
			}
		}
	}
	var r4, r6 []span
	for _, p := range ps {
		if p.p.Addr().Is4() {
			lo, hi := bounds4(p.p)
			r4 = append(r4, span{u128{0, uint64(lo)}, u128{0, uint64(hi)}, p.m})
		} else {
			lo, hi := bounds6(p.p)
			r6 = append(r6, span{lo, hi, p.m})
		}
	}
	for _, r := range disjoint(r4) {
		s.v4 = append(s.v4, range4{uint32(r.lo.lo), uint32(r.hi.lo), r.m})
	}
	for _, r := range disjoint(r6) {
		s.v6 = append(s.v6, range6(r))
	}
	s.Entries = len(s.v4) + len(s.v6)
	return s
}

type span struct {
	lo, hi u128
	m      int32
}

func (a u128) inc() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false // wrapped: the end of the address space
}

func (a u128) dec() u128 {
	if a.lo != 0 {
		return u128{a.hi, a.lo - 1}
	}
	return u128{a.hi - 1, ^uint64(0)}
}

// disjoint turns prefixes (which are always nested or disjoint) into sorted,
// non-overlapping spans where the most specific prefix names each address;
// for identical prefixes the first loaded wins.
func disjoint(rs []span) []span {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		return a.lo.less(b.lo) || a.lo == b.lo && b.hi.less(a.hi)
	})
	var out, stack []span
	var cur u128
	end := false // cur wrapped past the last address
	emit := func(lo, hi u128, m int32) {
		if end || hi.less(lo) {
			return
		}
		out = append(out, span{lo, hi, m})
	}
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !top.hi.less(cur) && !end {
			emit(cur, top.hi, top.m)
			var ok bool
			cur, ok = top.hi.inc()
			end = !ok
		}
	}
	for _, r := range rs {
		if n := len(stack); n > 0 && stack[n-1].lo == r.lo && stack[n-1].hi == r.hi {
			continue
		}
		for len(stack) > 0 && stack[len(stack)-1].hi.less(r.lo) {
			pop()
		}
		if len(stack) > 0 && cur.less(r.lo) {
			emit(cur, r.lo.dec(), stack[len(stack)-1].m)
		}
		stack = append(stack, r)
		cur, end = r.lo, false
	}
	for len(stack) > 0 {
		pop()
	}
	return out
}

func bounds4(p netip.Prefix) (uint32, uint32) {
	b := p.Addr().As4()
	lo := binary.BigEndian.Uint32(b[:])
	host := 32 - p.Bits()
	if host == 32 {
		return 0, ^uint32(0)
	}
	return lo, lo | (uint32(1)<<host - 1)
}

func bounds6(p netip.Prefix) (u128, u128) {
	b := p.Addr().As16()
	lo := u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	hi := lo
	host := 128 - p.Bits()
	switch {
	case host >= 64:
		hi.lo = ^uint64(0)
		if host == 128 {
			hi.hi = ^uint64(0)
		} else {
			hi.hi |= uint64(1)<<(host-64) - 1
		}
	case host > 0:
		hi.lo |= uint64(1)<<host - 1
	}
	return lo, hi
}

func resolveAll(ctx context.Context, domains []Entry, opts BuildOptions) ([][]netip.Addr, []string) {
	out := make([][]netip.Addr, len(domains))
	if opts.Resolver == nil {
		return out, []string{fmt.Sprintf("%d domain names not resolved (no resolver)", len(domains))}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	par := opts.Parallel
	if par <= 0 {
		par = 8
	}
	var (
		mu    sync.Mutex
		probs []string
		wg    sync.WaitGroup
		sem   = make(chan struct{}, par)
	)
	for i, e := range domains {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out, append(probs, fmt.Sprintf("resolving domains: %v", ctx.Err()))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			as, err := opts.Resolver.LookupNetIP(c, "ip", e.Domain)
			if err != nil {
				mu.Lock()
				if len(probs) < maxProblems {
					probs = append(probs, fmt.Sprintf("%s:%d: resolve %s: %v", e.List, e.Line, e.Domain, err))
				}
				mu.Unlock()
				return
			}
			out[i] = as
		}()
	}
	wg.Wait()
	return out, probs
}

//go:embed defaults/*.txt
var defaultFS embed.FS

// DefaultLists returns the shipped lists (the mining-pool domains), parsed.
func DefaultLists() ([]*List, error) {
	names, err := defaultFS.ReadDir("defaults")
	if err != nil {
		return nil, fmt.Errorf("default intel: %w", err)
	}
	var out []*List
	for _, n := range names {
		f, err := defaultFS.Open("defaults/" + n.Name())
		if err != nil {
			return nil, fmt.Errorf("default intel: %w", err)
		}
		l, err := Parse(f, "defaults/"+n.Name())
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Loader holds the current Set and rebuilds it from the configured files;
// the sensor reads Current on every connect and calls Refresh periodically
// to re-resolve domains and pick up edited files.
type Loader struct {
	files    []string
	defaults bool
	opts     BuildOptions
	log      *slog.Logger
	cur      atomic.Pointer[Set]
}

// NewLoader returns a Loader over the files (and the shipped defaults when
// withDefaults); call Refresh once before use.
func NewLoader(files []string, withDefaults bool, opts BuildOptions, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Loader{files: files, defaults: withDefaults, opts: opts, log: log}
}

// Current returns the Set in use (nil before the first Refresh).
func (l *Loader) Current() *Set { return l.cur.Load() }

// Refresh parses every file and resolves every domain again, then swaps the
// Set in. A file that cannot be read or parsed is an error and the previous
// Set stays in use, so a bad edit never disarms the detector.
func (l *Loader) Refresh(ctx context.Context) error {
	var lists []*List
	if l.defaults {
		d, err := DefaultLists()
		if err != nil {
			return err
		}
		lists = append(lists, d...)
	}
	for _, p := range l.files {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("load intel: %w", err)
		}
		li, err := Parse(f, p)
		f.Close()
		if err != nil {
			return err
		}
		lists = append(lists, li)
	}
	s := Build(ctx, lists, l.opts)
	for _, p := range s.Problems {
		l.log.Warn("intel list", "problem", p)
	}
	l.log.Info("intel lists loaded", "ranges", s.Entries, "domains", s.Domains, "problems", len(s.Problems))
	l.cur.Store(s)
	return nil
}

// SystemResolver is the resolver the sensor uses: the host's DNS through Go's resolver.
func SystemResolver() Resolver { return net.DefaultResolver }
