package suppress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// DefaultIgnoreFile is read from the working directory when present and no
// --ignore-file is given.
const DefaultIgnoreFile = ".bulwarkignore.yaml"

// MaxIgnoreFileSize bounds an ignore file; a real one is a few kilobytes.
const MaxIgnoreFileSize = 4 << 20

// ErrInvalid wraps every error about the content of an ignore file or a VEX
// document, so the CLI can tell bad input from I/O failure.
var ErrInvalid = errors.New("invalid suppression file")

// IgnoreFile is a parsed ignore file.
type IgnoreFile struct {
	// Source names the file in suppression records and warnings.
	Source string
	// Format is "yaml" or "list" (one ID per line, as .trivyignore).
	Format  string
	Entries []IgnoreEntry
}

// IgnoreEntry hides one vulnerability.
type IgnoreEntry struct {
	// ID is matched against a finding's ID, aliases and related IDs,
	// ignoring case.
	ID string
	// Package, when set, limits the entry to packages with that name (or
	// OS source package name), or, when it starts with "pkg:", to packages
	// whose PURL starts with it ("pkg:npm/lodash" matches every lodash
	// version, not lodash.merge).
	Package string
	// Reason says why the risk is accepted. Required in YAML files.
	Reason string
	// Expires is the instant the entry stops suppressing; zero means never.
	// A date "2026-01-31" suppresses to the end of that day, UTC.
	Expires time.Time
	// Line is the entry's line in the file, for messages.
	Line int
}

// yamlIgnoreFile is the YAML layout:
//
//	ignore:
//	  - id: CVE-2023-44487
//	    package: google.golang.org/grpc   # optional
//	    reason: no HTTP/2 listener is exposed
//	    expires: 2026-12-31               # optional
type yamlIgnoreFile struct {
	Ignore []yamlIgnoreEntry `yaml:"ignore"`
}

type yamlIgnoreEntry struct {
	ID      string    `yaml:"id"`
	Package string    `yaml:"package"`
	Reason  string    `yaml:"reason"`
	Expires yaml.Node `yaml:"expires"`
	line    int
}

// UnmarshalYAML records the entry's line and refuses unknown keys itself:
// Node.Decode does not inherit the decoder's KnownFields setting.
func (e *yamlIgnoreEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: an entry must be a mapping with id, reason, and optionally package and expires", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "id", "package", "reason", "expires":
		default:
			return fmt.Errorf("line %d: unknown key %q (want id, package, reason, expires)", n.Content[i].Line, k)
		}
	}
	type plain yamlIgnoreEntry
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*e = yamlIgnoreEntry(p)
	e.line = n.Line
	return nil
}

// ParseIgnoreFile reads an ignore file: YAML when its first statement is
// "ignore:" (or a "---" document marker), else a plain list with one ID per
// line, "#" comments, and Trivy's optional " exp:YYYY-MM-DD" suffix — so a
// .trivyignore can be used as it is.
func ParseIgnoreFile(source string, data []byte) (f *IgnoreFile, err error) {
	if len(data) > MaxIgnoreFileSize {
		return nil, fmt.Errorf("ignore file %s: %w: larger than %d bytes", source, ErrInvalid, MaxIgnoreFileSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if isYAMLIgnore(data) {
		return parseYAMLIgnore(source, data)
	}
	return parseListIgnore(source, data)
}

func isYAMLIgnore(data []byte) bool {
	for line := range bytes.Lines(data) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		return bytes.HasPrefix(t, []byte("ignore:")) || bytes.HasPrefix(t, []byte("---")) || bytes.HasPrefix(t, []byte("%YAML"))
	}
	return false
}

func parseYAMLIgnore(source string, data []byte) (f *IgnoreFile, err error) {
	defer func() {
		// yaml.v3 has panicked on malformed input before; never let it
		// take the scan down.
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("ignore file %s: %w: YAML parser failed: %v", source, ErrInvalid, p)
		}
	}()
	var y yamlIgnoreFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt "expire:" must not silently mean "never"
	if err := dec.Decode(&y); err != nil {
		return nil, fmt.Errorf("ignore file %s: %w: %v", source, ErrInvalid, err)
	}
	f = &IgnoreFile{Source: source, Format: "yaml"}
	for i, e := range y.Ignore {
		where := fmt.Sprintf("ignore file %s: line %d (entry %d)", source, e.line, i+1)
		id := strings.TrimSpace(e.ID)
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", where, ErrInvalid, err)
		}
		reason := strings.TrimSpace(e.Reason)
		if reason == "" {
			return nil, fmt.Errorf("%s: %w: %s has no reason (say why the risk is accepted)", where, ErrInvalid, id)
		}
		var exp time.Time
		if e.Expires.Kind != 0 {
			if e.Expires.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: %w: expires must be a date", where, ErrInvalid)
			}
			exp, err = parseExpiry(e.Expires.Value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w: %v", where, ErrInvalid, err)
			}
		}
		f.Entries = append(f.Entries, IgnoreEntry{
			ID: id, Package: strings.TrimSpace(e.Package), Reason: reason, Expires: exp, Line: e.line,
		})
	}
	return f, nil
}

func parseListIgnore(source string, data []byte) (*IgnoreFile, error) {
	f := &IgnoreFile{Source: source, Format: "list"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxIgnoreFileSize)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		e := IgnoreEntry{ID: fields[0], Reason: "listed in " + source, Line: n}
		if err := checkID(e.ID); err != nil {
			return nil, fmt.Errorf("ignore file %s: line %d: %w: %v", source, n, ErrInvalid, err)
		}
		for _, extra := range fields[1:] {
			v, ok := strings.CutPrefix(extra, "exp:")
			if !ok {
				return nil, fmt.Errorf("ignore file %s: line %d: %w: unexpected %q after the ID (a YAML ignore file starts with \"ignore:\")", source, n, ErrInvalid, extra)
			}
			exp, err := parseExpiry(v)
			if err != nil {
				return nil, fmt.Errorf("ignore file %s: line %d: %w: %v", source, n, ErrInvalid, err)
			}
			e.Expires = exp
		}
		f.Entries = append(f.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ignore file %s: line %d: %w: %v", source, n+1, ErrInvalid, err)
	}
	return f, nil
}

// checkID accepts the shape of every advisory ID scheme (letters, digits,
// and "-_.:/"), not any string: a stray YAML value or prose line should be
// an error, not an entry that silently matches nothing.
func checkID(id string) error {
	if id == "" {
		return errors.New("entry has no id")
	}
	if len(id) > 128 {
		return fmt.Errorf("id %.20q… is longer than 128 characters", id)
	}
	for _, r := range id {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.:/", r))) {
			return fmt.Errorf("id %q: character %q is not used in vulnerability IDs", id, r)
		}
	}
	return nil
}

// parseExpiry reads a date ("2026-01-31", valid to the end of that day in
// UTC) or an RFC 3339 time (valid until that instant).
func parseExpiry(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("expires %q: want a date like 2026-01-31", s)
}
