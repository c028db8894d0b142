package python

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

// MaxHeaderSize bounds how much of a metadata file is read. Headers are a
// few KiB; old-style (Metadata-Version 1.x) files carry the long
// description as a header, which is still far below this.
const MaxHeaderSize = 1 << 20

// DistInfo reports installed Python distributions.
type DistInfo struct{}

// NewDistInfo returns the "language/python/dist-info" extractor.
func NewDistInfo() *DistInfo { return &DistInfo{} }

// Name implements inventory.Extractor.
func (*DistInfo) Name() string { return "language/python/dist-info" }

// Version implements inventory.Extractor.
func (*DistInfo) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*DistInfo) Required(path string, _ inventory.FileInfo) bool {
	return strings.HasSuffix(path, ".dist-info/METADATA") ||
		strings.HasSuffix(path, ".egg-info/PKG-INFO") ||
		strings.HasSuffix(path, ".egg/EGG-INFO/PKG-INFO") ||
		// distutils (and Python's own install) write the metadata as a
		// single file named like the directory form.
		strings.HasSuffix(path, ".egg-info")
}

// Extract implements inventory.Extractor.
func (e *DistInfo) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	m, err := parseMetadata(in.Reader)
	if err != nil {
		return inventory.Output{}, fmt.Errorf("read python metadata %s: %w", in.Path, err)
	}
	if m.name == "" || m.version == "" {
		return inventory.Output{}, fmt.Errorf("python metadata %s: no valid Name and Version headers", in.Path)
	}
	name := NormalizeName(m.name)
	p := inventory.Package{
		Name:      name,
		Version:   m.version,
		Type:      inventory.TypePyPI,
		Ecosystem: inventory.EcosystemPyPI,
		PURL:      packageurl.NewPackageURL(packageurl.TypePyPi, "", name, m.version, nil, "").ToString(),
		Licenses:  m.licenses(),
		Location:  in.Path,
		Extractor: e.Name(),
	}
	return inventory.Output{Packages: []inventory.Package{p}}, nil
}

// metadata holds the headers of a core metadata file
// (https://packaging.python.org/en/latest/specifications/core-metadata/)
// that Bulwark uses.
type metadata struct {
	name, version string
	// license is the free-text License header; licenseLong is set when it
	// had continuation lines (a whole license text pasted in).
	license     string
	licenseLong bool
	// licenseExpr is the SPDX License-Expression header (metadata 2.4).
	licenseExpr string
	// classifiers are the trove classifiers under "License ::".
	classifiers []string
}

// parseMetadata reads headers up to the first empty line, end of file or
// MaxHeaderSize, whichever comes first. Header names are case-insensitive
// (RFC 822). The first Name and Version win.
func parseMetadata(r io.Reader) (metadata, error) {
	var m metadata
	br := bufio.NewReaderSize(io.LimitReader(r, MaxHeaderSize), 4096)
	current := ""
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer is never a header Bulwark
			// reads; keep its start for continuation bookkeeping and skip
			// the rest.
			if err := skipLine(br); err != nil && !errors.Is(err, io.EOF) {
				return m, err
			}
			err = nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return m, err
		}
		eof := err != nil
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return m, nil // end of headers (or of file)
		}
		if line[0] == ' ' || line[0] == '\t' {
			if current == "license" {
				m.licenseLong = true
			}
		} else {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 {
				return m, nil // not a header: the header block is over
			}
			key, value := line[:colon], string(bytes.TrimSpace(line[colon+1:]))
			current = ""
			switch {
			case bytes.EqualFold(key, []byte("Name")):
				if m.name == "" && validName(value) {
					m.name = value
				}
			case bytes.EqualFold(key, []byte("Version")):
				if m.version == "" && validVersion(value) {
					m.version = value
				}
			case bytes.EqualFold(key, []byte("License")):
				current = "license"
				if m.license == "" {
					m.license = value
				}
			case bytes.EqualFold(key, []byte("License-Expression")):
				if m.licenseExpr == "" {
					m.licenseExpr = value
				}
			case bytes.EqualFold(key, []byte("Classifier")):
				if strings.HasPrefix(value, "License ::") && len(m.classifiers) < 16 {
					m.classifiers = append(m.classifiers, value)
				}
			}
		}
		if eof {
			return m, nil
		}
	}
}

func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// licenses prefers the SPDX expression, then a short License header, then
// the license classifiers' last element ("License :: OSI Approved :: MIT
// License" → "MIT License").
func (m metadata) licenses() []string {
	const maxLen = 200
	if m.licenseExpr != "" && len(m.licenseExpr) <= maxLen {
		return []string{m.licenseExpr}
	}
	if l := m.license; l != "" && !m.licenseLong && len(l) <= maxLen && !strings.EqualFold(l, "UNKNOWN") {
		return []string{l}
	}
	var out []string
	for _, c := range m.classifiers {
		last := c[strings.LastIndex(c, "::")+2:]
		last = strings.TrimSpace(last)
		if last != "" && last != "OSI Approved" && len(last) <= maxLen && !slices.Contains(out, last) {
			out = append(out, last)
		}
	}
	return out
}

// NormalizeName returns the PEP 503 normalised form of a project name:
// lower case, with every run of "-", "_" and "." replaced by a single "-".
// It is how PyPI and the advisory databases key projects.
func NormalizeName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	sep := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-' || c == '_' || c == '.':
			sep = true
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		b.WriteByte(c)
	}
	if sep {
		b.WriteByte('-')
	}
	return b.String()
}

// validName checks the PEP 508 name rule: ASCII letters and digits, with
// ".", "_" and "-" allowed inside.
func validName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && ((c != '.' && c != '_' && c != '-') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// validVersion accepts anything printable without spaces: PEP 440 is
// checked where versions are compared, and legacy versions exist.
func validVersion(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
