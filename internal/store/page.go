package store

import (
	"context"
	"slices"
	"strings"
)

// Page selects a window of a list and its order.
type Page struct {
	// Limit is the number of rows (default 50, at most MaxLimit).
	Limit int
	// Offset skips rows (limit+offset paging; lists return the total so a
	// console can show page numbers).
	Offset int
	// Sort is a column name from the list's documented set, "-" prefixed
	// for descending ("-last_seen"). Empty means the list's default.
	// Anything else is ErrInvalid: sort keys are never put into SQL
	// verbatim, only looked up in a whitelist.
	Sort string
}

// MaxLimit bounds Page.Limit.
const MaxLimit = 1000

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 50
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// orderBy maps p.Sort through allowed (sort key → SQL expression) and
// appends tie so the order is total and pages are stable.
func (p Page) orderBy(allowed map[string]string, def, tie string) (string, error) {
	key := p.Sort
	if key == "" {
		key = def
	}
	desc := strings.HasPrefix(key, "-")
	col, ok := allowed[strings.TrimPrefix(key, "-")]
	if !ok {
		keys := make([]string, 0, len(allowed))
		for k := range allowed {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return "", invalid("unknown sort %q (want one of %s, optionally prefixed with -)", p.Sort, strings.Join(keys, ", "))
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	return " ORDER BY " + col + dir + ", " + tie + dir, nil
}

// where accumulates conditions written by this package (never user text)
// and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// likeEscape makes user text a literal LIKE pattern fragment; use with
// ESCAPE '\'.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// list runs a count and a page query over the same FROM/WHERE. scan reads
// one row; cols is the select list.
func (s *Store) list(ctx context.Context, cols, from string, w *where, order string, p Page, scan func(scanner) error) (int, error) {
	var total int
	if err := s.queryRow(ctx, s.r, "SELECT COUNT(*) FROM "+from+w.sql(), w.args...).Scan(&total); err != nil {
		return 0, err
	}
	if total == 0 || p.Offset >= total {
		return total, nil
	}
	args := append(append([]any{}, w.args...), p.limit(), max(p.Offset, 0))
	rows, err := s.query(ctx, s.r, "SELECT "+cols+" FROM "+from+w.sql()+order+" LIMIT ? OFFSET ?", args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return 0, err
		}
	}
	return total, rows.Err()
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }
