package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// maxQueryLen bounds a page's raw query string.
const maxQueryLen = 4096

// maxPage bounds page numbers: beyond it offsets get slow and nobody
// pages that far by hand.
const maxPage = 10_000

// query reads and validates a request's query parameters. The first
// problem is kept in err; accessors return zero values after it.
type query struct {
	v   url.Values
	err error
}

func newQuery(r *http.Request) *query {
	q := &query{}
	if len(r.URL.RawQuery) > maxQueryLen {
		q.err = fmt.Errorf("the query string is longer than %d bytes", maxQueryLen)
		q.v = url.Values{}
		return q
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		q.err = fmt.Errorf("the query string is malformed")
		v = url.Values{}
	}
	q.v = v
	return q
}

func (q *query) fail(format string, args ...any) {
	if q.err == nil {
		q.err = fmt.Errorf(format, args...)
	}
}

// text returns a trimmed free-text parameter of at most max bytes, valid
// UTF-8 without control characters.
func (q *query) text(name string, max int) string {
	s := strings.TrimSpace(q.v.Get(name))
	if s == "" {
		return ""
	}
	if len(s) > max {
		q.fail("parameter %q is longer than %d bytes", name, max)
		return ""
	}
	if !cleanText(s) {
		q.fail("parameter %q holds invalid characters", name)
		return ""
	}
	return s
}

// cleanText reports whether s is valid UTF-8 without control characters.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// enum returns a parameter that must be one of allowed ("" when absent).
func (q *query) enum(name string, allowed ...string) string {
	s := q.v.Get(name)
	if s == "" {
		return ""
	}
	if !slices.Contains(allowed, s) {
		q.fail("parameter %q must be one of %s", name, strings.Join(allowed, ", "))
		return ""
	}
	return s
}

// flag reads a checkbox: absent, "1", "on" or "true".
func (q *query) flag(name string) bool {
	switch q.v.Get(name) {
	case "":
		return false
	case "1", "on", "true":
		return true
	case "0", "false":
		return false
	}
	q.fail("parameter %q must be 1 or 0", name)
	return false
}

// page returns the 1-based page number.
func (q *query) page() int {
	s := q.v.Get("page")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPage {
		q.fail("parameter \"page\" must be a number from 1 to %d", maxPage)
		return 1
	}
	return n
}

// sortKey returns the sort key from the whitelist (optionally "-"
// prefixed for descending), or def.
func (q *query) sortKey(allowed []string, def string) string {
	s := q.v.Get("sort")
	if s == "" {
		return def
	}
	if !slices.Contains(allowed, strings.TrimPrefix(s, "-")) {
		q.fail("parameter \"sort\" must be one of %s, optionally prefixed with -", strings.Join(allowed, ", "))
		return def
	}
	return s
}

// severity reads a severity name ("critical"…"unknown").
func (q *query) severity(name string) (vulndb.Severity, bool) {
	s := q.enum(name, "critical", "high", "medium", "low", "unknown")
	if s == "" {
		return vulndb.SeverityUnknown, false
	}
	v, err := vulndb.ParseSeverity(s)
	if err != nil {
		q.fail("parameter %q: %v", name, err)
		return vulndb.SeverityUnknown, false
	}
	return v, true
}

// link builds path?query from base values with overrides (name, value
// pairs; an empty value removes the parameter). Values are encoded by
// url.Values, so user text cannot break out of its parameter.
func link(path string, v url.Values, kv ...string) string {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			out.Del(kv[i])
		} else {
			out.Set(kv[i], kv[i+1])
		}
	}
	if e := out.Encode(); e != "" {
		return path + "?" + e
	}
	return path
}

// pager is pagination state for a list.
type pager struct {
	Page, Per, Total int
	Prev, Next       string
	From, To         int
	Pages            int
}

func newPager(path string, v url.Values, page, per, total int) pager {
	p := pager{Page: page, Per: per, Total: total}
	p.Pages = max(1, (total+per-1)/per)
	if total > 0 {
		p.From = (page-1)*per + 1
		p.To = min(total, page*per)
	}
	if page > 1 {
		prev := ""
		if page-1 > 1 {
			prev = strconv.Itoa(page - 1)
		}
		p.Prev = link(path, v, "page", prev)
	}
	if page*per < total && page < maxPage {
		p.Next = link(path, v, "page", strconv.Itoa(page+1))
	}
	return p
}

// sortLinks gives each sortable column its link and current direction.
type sortLink struct {
	Href string
	// Dir is "asc", "desc" or "" when the column is not the sort key.
	Dir string
}

func sortLinks(path string, v url.Values, current string, keys []string, descFirst map[string]bool) map[string]sortLink {
	out := make(map[string]sortLink, len(keys))
	for _, k := range keys {
		sl := sortLink{}
		next := k
		if descFirst[k] {
			next = "-" + k
		}
		switch current {
		case k:
			sl.Dir = "asc"
			next = "-" + k
		case "-" + k:
			sl.Dir = "desc"
			next = k
		}
		sl.Href = link(path, v, "sort", next, "page", "")
		out[k] = sl
	}
	return out
}
