package intel

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// Limits that keep a hostile or mistaken file from taking the sensor's memory.
const (
	MaxLineBytes = 4096
	MaxEntries   = 2_000_000
	maxProblems  = 20
)

// Entry is one indicator from a list.
type Entry struct {
	Prefix netip.Prefix // set for an IP or CIDR (a single IP is a /32 or /128)
	Domain string       // set for a domain name, lower case, no trailing dot
	List   string       // the list it came from (file name or "defaults/...")
	Line   int
}

// List is a parsed file: its entries and the lines that were not understood.
type List struct {
	Name     string
	Entries  []Entry
	Problems []string // "name:line: why", at most 20 (Skipped counts all)
	Skipped  int
}

// ErrNoEntries is returned when a file yields no indicator at all: almost
// certainly the wrong file or format, which the operator must hear about.
var ErrNoEntries = errors.New("no indicators found")

// Parse reads one list. Each line is one indicator, in any of these forms
// (detected per line, so lists can be concatenated):
//
//	203.0.113.7                       plain IP
//	198.51.100.0/24                   CIDR
//	pool.example.com                  domain (resolved later)
//	ExitAddress 192.0.2.1 2024-05-01  TOR exit list (ExitNode, Published, LastStatus lines ignored)
//	192.0.2.9,scanner,2024-01-01      CSV: the first field is the indicator, a header row is skipped
//
// "#" and ";" start comments; blank lines are ignored. Unparseable lines are
// counted in Skipped (with the first few in Problems), not fatal.
func Parse(r io.Reader, name string) (*List, error) {
	l := &List{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		if len(l.Entries) >= MaxEntries {
			return l, fmt.Errorf("parse intel %s:%d: more than %d entries", name, line, MaxEntries)
		}
		s := sc.Text()
		if i := strings.IndexAny(s, "#;"); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(strings.TrimPrefix(s, "\ufeff"))
		if s == "" {
			continue
		}
		ind, ok := indicator(s)
		if !ok {
			continue // a known non-indicator line (TOR metadata, CSV header)
		}
		e, why := parseIndicator(ind)
		if why != "" {
			l.problem(fmt.Sprintf("%s:%d: %s", name, line, why))
			continue
		}
		e.List, e.Line = name, line
		l.Entries = append(l.Entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return l, fmt.Errorf("parse intel %s:%d: line longer than %d bytes", name, line+1, MaxLineBytes)
		}
		return l, fmt.Errorf("parse intel %s: %w", name, err)
	}
	if len(l.Entries) == 0 {
		return l, fmt.Errorf("parse intel %s: %w (%d lines skipped)", name, ErrNoEntries, l.Skipped)
	}
	return l, nil
}

func (l *List) problem(p string) {
	l.Skipped++
	if len(l.Problems) < maxProblems {
		l.Problems = append(l.Problems, p)
	}
}

// indicator extracts the indicator text from a line of any supported format.
func indicator(s string) (string, bool) {
	if f := strings.Fields(s); len(f) > 0 {
		switch f[0] {
		case "ExitAddress":
			if len(f) < 2 {
				return "", true // reported as a problem by parseIndicator("")
			}
			return f[1], true
		case "ExitNode", "Published", "LastStatus":
			return "", false
		}
	}
	if i := strings.IndexByte(s, ','); i >= 0 {
		s = strings.Trim(strings.TrimSpace(s[:i]), `"`)
		switch strings.ToLower(s) {
		case "ip", "ip_address", "indicator", "address", "cidr", "domain", "host", "dst_ip":
			return "", false // header row
		}
	}
	return s, true
}

func parseIndicator(s string) (Entry, string) {
	if s == "" {
		return Entry{}, "empty indicator"
	}
	if strings.ContainsAny(s, " \t") {
		return Entry{}, fmt.Sprintf("%q: more than one field (use CSV for extra columns)", trunc(s))
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Entry{}, fmt.Sprintf("%q: not a CIDR", trunc(s))
		}
		return Entry{Prefix: p.Masked()}, ""
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap().WithZone("")
		return Entry{Prefix: netip.PrefixFrom(a, a.BitLen())}, ""
	}
	d := strings.TrimSuffix(strings.ToLower(s), ".")
	if !validDomain(d) {
		return Entry{}, fmt.Sprintf("%q: not an IP, CIDR or domain name", trunc(s))
	}
	return Entry{Domain: d}, ""
}

// validDomain accepts host names (letters, digits, '-', '_' in labels of at
// most 63 bytes, 253 in all, at least one dot).
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	labels := strings.Split(d, ".")
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return false // "300.1.1.1" is a bad address, not a name
	}
	for _, label := range labels {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
