package ruby

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/package-url/packageurl-go"
)

// MaxGemspecSize bounds how much of a gemspec is read. Generated gemspecs
// list every file of the gem on one line, which reaches a few hundred KiB
// for the largest gems.
const MaxGemspecSize = 4 << 20

// Gemspec reports installed gems.
type Gemspec struct{}

// NewGemspec returns the "language/ruby/gemspec" extractor.
func NewGemspec() *Gemspec { return &Gemspec{} }

// Name implements inventory.Extractor.
func (*Gemspec) Name() string { return "language/ruby/gemspec" }

// Version implements inventory.Extractor.
func (*Gemspec) Version() int { return 1 }

// Required takes *.gemspec files directly in a specifications/ or
// specifications/default/ directory. Other gemspecs are projects' own
// sources (a gem's checkout, an application), not installed gems.
func (*Gemspec) Required(path string, _ inventory.FileInfo) bool {
	if !strings.HasSuffix(path, ".gemspec") {
		return false
	}
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return false
	}
	dir := path[:i]
	if d, ok := strings.CutSuffix(dir, "/default"); ok {
		dir = d
	}
	return dir == "specifications" || strings.HasSuffix(dir, "/specifications")
}

// Extract implements inventory.Extractor.
func (e *Gemspec) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	s, err := parseGemspec(ctx, in.Reader)
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read gemspec %s: %w", in.Path, err)
	}
	if s.name == "" || s.version == "" {
		return inventory.Output{}, fmt.Errorf("gemspec %s: no literal name and version", in.Path)
	}
	p := newPackage(s.name, s.version, in.Path, e.Name())
	p.Licenses = s.licenses
	return inventory.Output{Packages: []inventory.Package{p}}, nil
}

func newPackage(name, version, location, extractor string) inventory.Package {
	return inventory.Package{
		Name:      name,
		Version:   version,
		Type:      inventory.TypeGem,
		Ecosystem: inventory.EcosystemRubyGems,
		PURL:      packageurl.NewPackageURL(packageurl.TypeGem, "", name, version, nil, "").ToString(),
		Location:  location,
		Extractor: extractor,
	}
}

type gemspec struct {
	name, version string
	licenses      []string
	// stubName and stubVersion come from the "# stub:" comment.
	stubName, stubVersion string
}

// parseGemspec reads assignments line by line. Lines longer than the
// buffer (the files list) are skipped: they never hold what is read here.
func parseGemspec(ctx context.Context, r io.Reader) (gemspec, error) {
	var s gemspec
	br := bufio.NewReaderSize(io.LimitReader(r, MaxGemspecSize), 4<<10)
	licensesSeen := false
	for n := 0; ; n++ {
		if n%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return s, err
			}
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			line = nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return s, err
		}
		s.line(bytes.TrimSpace(line), &licensesSeen)
		if err != nil || (s.name != "" && s.version != "" && licensesSeen) {
			break
		}
	}
	if s.name == "" && s.version == "" {
		s.name, s.version = s.stubName, s.stubVersion
	}
	return s, nil
}

func (s *gemspec) line(l []byte, licensesSeen *bool) {
	if rest, ok := bytes.CutPrefix(l, []byte("# stub: ")); ok && s.stubName == "" {
		// "# stub: json 2.6.1 ruby lib"
		f := strings.Fields(string(rest))
		if len(f) >= 2 && validName(f[0]) && validVersion(f[1]) {
			s.stubName, s.stubVersion = f[0], f[1]
		}
		return
	}
	attr, value, ok := assignment(l)
	if !ok {
		return
	}
	switch attr {
	case "name":
		if v, ok := literal(value); ok && s.name == "" && validName(v) {
			s.name = v
		}
	case "version":
		if inner, ok := strings.CutPrefix(value, "Gem::Version.new("); ok {
			value = strings.TrimSuffix(strings.TrimSuffix(inner, ".freeze"), ")")
		}
		if v, ok := literal(value); ok && s.version == "" && validVersion(v) {
			s.version = v
		}
	case "license", "licenses":
		if *licensesSeen {
			return
		}
		*licensesSeen = true
		value = strings.TrimSuffix(strings.TrimPrefix(value, "["), "]")
		for value != "" && len(s.licenses) < 16 {
			v, rest, ok := stringLiteral(value)
			if !ok {
				break
			}
			if v != "" && len(v) <= 128 && !slices.Contains(s.licenses, v) {
				s.licenses = append(s.licenses, v)
			}
			value = strings.TrimLeft(rest, ", ")
		}
	}
}

// assignment splits `s.attr = value` (any receiver name), rejecting
// comparisons and compound assignments.
func assignment(l []byte) (attr, value string, ok bool) {
	dot := bytes.IndexByte(l, '.')
	if dot <= 0 || !isIdent(l[:dot]) {
		return "", "", false
	}
	rest := l[dot+1:]
	eq := bytes.IndexByte(rest, '=')
	if eq <= 0 {
		return "", "", false
	}
	a := bytes.TrimSpace(rest[:eq])
	if !isIdent(a) || eq+1 < len(rest) && (rest[eq+1] == '=' || rest[eq+1] == '~') {
		return "", "", false
	}
	switch string(a) {
	case "name", "version", "license", "licenses":
		return string(a), string(bytes.TrimSpace(rest[eq+1:])), true
	}
	return "", "", false
}

func isIdent(b []byte) bool {
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		return false
	}
	for _, c := range b {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// literal accepts a value that is exactly one string literal, optionally
// frozen, optionally followed by a trailing comment.
func literal(v string) (string, bool) {
	s, rest, ok := stringLiteral(v)
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if rest != "" && rest[0] != '#' {
		return "", false // e.g. "1.0" + suffix: computed
	}
	return s, true
}

// stringLiteral parses a Ruby string literal at the start of v and returns
// its value and what follows it (after ".freeze"). Literals with escapes or
// interpolation are rejected: no generated name or version has them.
func stringLiteral(v string) (val, rest string, ok bool) {
	if v == "" {
		return "", "", false
	}
	var closer byte
	start := 1
	switch v[0] {
	case '"', '\'':
		closer = v[0]
	case '%':
		if len(v) < 3 {
			return "", "", false
		}
		if v[1] == 'q' || v[1] == 'Q' {
			start = 3
		} else {
			start = 2
		}
		if start > len(v) {
			return "", "", false
		}
		switch open := v[start-1]; open {
		case '{':
			closer = '}'
		case '(':
			closer = ')'
		case '<':
			closer = '>'
		case '[':
			closer = ']'
		case '|', '!', '/':
			closer = open
		default:
			return "", "", false
		}
	default:
		return "", "", false
	}
	end := strings.IndexByte(v[start:], closer)
	if end < 0 {
		return "", "", false
	}
	val = v[start : start+end]
	if strings.ContainsAny(val, "\\#") {
		return "", "", false
	}
	rest = v[start+end+1:]
	rest = strings.TrimPrefix(rest, ".freeze")
	return val, rest, true
}

// validName accepts RubyGems names: letters, digits, ".", "-", "_".
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return s[0] != '.' && s[0] != '-'
}

// validVersion accepts Gem::Version's character set, starting with a digit.
func validVersion(s string) bool {
	if s == "" || len(s) > 64 || s[0] < '0' || s[0] > '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
