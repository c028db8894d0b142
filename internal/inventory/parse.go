package inventory

import (
	"fmt"
	"strings"
)

// Problems collects what went wrong while parsing one file: the first few
// messages, and a count of the rest. Parsers of package databases return
// what did parse together with Err, so that a damaged database is reported
// in one bounded error, not silently shortened. The zero value is ready to
// use.
type Problems struct {
	n     int
	first []string
}

// maxProblems bounds the messages Problems keeps.
const maxProblems = 5

// Add records one problem.
func (p *Problems) Add(format string, args ...any) {
	p.n++
	if len(p.first) < maxProblems {
		p.first = append(p.first, fmt.Sprintf(format, args...))
	}
}

// Err returns nil when no problem was recorded, else an error naming the
// file, the first problems and how many more there were.
func (p *Problems) Err(path string) error {
	if p.n == 0 {
		return nil
	}
	more := ""
	if p.n > len(p.first) {
		more = fmt.Sprintf(" (and %d more)", p.n-len(p.first))
	}
	return fmt.Errorf("parse %s: %s%s", path, strings.Join(p.first, "; "), more)
}

// CleanPath turns a path recorded in a package database into the form of
// Input.Path (relative, no leading slash). A path with an empty, "." or
// ".." element, or with a control character, is refused: owned files are
// only map keys, but a key no real file can have is noise, and one that
// climbs out of the root is a lie.
func CleanPath(s string) (string, bool) {
	s = strings.TrimLeft(s, "/")
	if s == "" {
		return "", false
	}
	seg := 0 // start of the current element
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '/' {
			if s[i] < 0x20 || s[i] == 0x7f {
				return "", false
			}
			continue
		}
		switch s[seg:i] {
		case "", ".", "..":
			return "", false
		}
		seg = i + 1
	}
	return s, true
}
