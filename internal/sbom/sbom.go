package sbom

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Format names a document format Decode recognises.
type Format string

const (
	FormatCycloneDXJSON Format = "cyclonedx-json"
	FormatCycloneDXXML  Format = "cyclonedx-xml"
	FormatSPDXJSON      Format = "spdx-json"
	FormatSPDXTagValue  Format = "spdx-tag-value"
)

// Extractor names recorded in inventory.Package.Extractor for packages that
// came from an SBOM.
const (
	ExtractorCycloneDX = "sbom/cyclonedx"
	ExtractorSPDX      = "sbom/spdx"
)

var (
	// ErrUnknownFormat: the input is neither CycloneDX nor SPDX.
	ErrUnknownFormat = errors.New("not a CycloneDX or SPDX document")
	// ErrUnsupportedVersion: a CycloneDX or SPDX version Decode cannot read.
	ErrUnsupportedVersion = errors.New("unsupported SBOM specification version")
	// ErrTooLarge: the document exceeds Limits.MaxBytes or MaxComponents.
	ErrTooLarge = errors.New("SBOM too large")
	// ErrTooDeep: the document nests deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("SBOM nested too deeply")
)

// Limits bound what Decode accepts. An SBOM comes from outside — a
// pipeline artefact, a vendor — and is read whole into memory.
type Limits struct {
	// MaxBytes is the largest document read.
	MaxBytes int64
	// MaxDepth bounds JSON/XML nesting (objects and arrays, or elements).
	MaxDepth int
	// MaxComponents bounds the components/packages walked.
	MaxComponents int
}

// DefaultLimits are generous for real SBOMs (a large image's is tens of
// megabytes and a few thousand components deep at most a handful of
// levels) and small enough to keep a hostile one from exhausting memory.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 256 << 20, MaxDepth: 128, MaxComponents: 1 << 20}
}

// Decoded is what an SBOM says is installed.
type Decoded struct {
	Format Format
	// SpecVersion is the specification version the document declares
	// ("1.5", "SPDX-2.3").
	SpecVersion string
	// Subject describes what the SBOM is about (CycloneDX
	// metadata.component, the SPDX package the document DESCRIBES). It is
	// not among Packages: it is the application or image itself.
	Subject *Subject
	// OS is the operating system component, when the SBOM has one.
	OS *inventory.OS
	// Packages are the components with a usable Package URL, in document
	// order. Location is what the SBOM records (CycloneDX evidence or
	// properties) and may be empty: the caller may fill in the SBOM's path.
	Packages []inventory.Package
	// Skipped lists components that could not become packages (no PURL, a
	// PURL type Bulwark does not match, an unparsable PURL).
	Skipped []Skipped
	// Warnings are things the user should know about the input, such as OS
	// packages whose release is unknown and so cannot be matched.
	Warnings []string
}

// Subject is the component an SBOM describes.
type Subject struct {
	Name    string
	Version string
	PURL    string
	// Type is the CycloneDX component type or SPDX primary package purpose.
	Type string
}

// Skipped is a component Decode did not turn into a package.
type Skipped struct {
	Name    string
	Version string
	PURL    string
	Reason  string
}

// Decode reads one SBOM with DefaultLimits.
func Decode(r io.Reader) (*Decoded, error) {
	return DecodeLimits(r, DefaultLimits())
}

// DecodeLimits reads one SBOM, detecting its format from its content.
func DecodeLimits(r io.Reader, lim Limits) (d *Decoded, err error) {
	def := DefaultLimits()
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = def.MaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = def.MaxDepth
	}
	if lim.MaxComponents <= 0 {
		lim.MaxComponents = def.MaxComponents
	}
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read SBOM: %w", err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("read SBOM: %w: larger than %s", ErrTooLarge, byteSize(lim.MaxBytes))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	body := bytes.TrimLeft(data, " \t\r\n")

	// The third-party decoders are large and reflective; a bug in one of
	// them on hostile input must not take the process down.
	defer func() {
		if p := recover(); p != nil {
			d, err = nil, fmt.Errorf("decode SBOM: parser failed on malformed input: %v", p)
		}
	}()

	switch {
	case len(body) > 0 && body[0] == '{':
		return decodeJSON(body, lim)
	case len(body) > 0 && body[0] == '<':
		return decodeXML(body, lim)
	case isTagValue(body):
		return decodeSPDXTagValue(body, lim)
	}
	return nil, fmt.Errorf("decode SBOM: %w", ErrUnknownFormat)
}

func decodeJSON(data []byte, lim Limits) (*Decoded, error) {
	if err := checkJSONDepth(data, lim.MaxDepth); err != nil {
		return nil, fmt.Errorf("decode SBOM: %w", err)
	}
	// The format is told by a top-level key. Rather than a probe decode
	// (a third full pass over a large document), look for the key and let
	// the format's decoder confirm it.
	if bytes.Contains(data, []byte(`"bomFormat"`)) {
		d, err := decodeCycloneDXJSON(data, lim)
		if !errors.Is(err, errNotCycloneDX) || !bytes.Contains(data, []byte(`"spdxVersion"`)) {
			return d, err
		}
	}
	if bytes.Contains(data, []byte(`"spdxVersion"`)) {
		return decodeSPDXJSON(data, lim)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("decode SBOM: %w: invalid JSON", ErrUnknownFormat)
	}
	return nil, fmt.Errorf("decode SBOM: %w (JSON without bomFormat \"CycloneDX\" or spdxVersion)", ErrUnknownFormat)
}

// checkJSONDepth scans the document once for its nesting depth, so a
// hostile "[[[[…" is refused before any decoder recurses into it.
func checkJSONDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: JSON nesting deeper than %d", ErrTooDeep, max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

func decodeXML(data []byte, lim Limits) (*Decoded, error) {
	// One token pass checks depth and finds the root element; encoding/xml
	// expands no external or custom entities, so there is no XXE or
	// entity-expansion bomb to guard against.
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth := 0
	var root xml.Name
	for {
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode SBOM: invalid XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && root.Local == "" {
				root = t.Name
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "xmlns" {
						root.Space = a.Value
					}
				}
			}
			depth++
			if depth > lim.MaxDepth {
				return nil, fmt.Errorf("decode SBOM: %w: XML nesting deeper than %d", ErrTooDeep, lim.MaxDepth)
			}
		case xml.EndElement:
			depth--
		}
	}
	const ns = "http://cyclonedx.org/schema/bom/"
	if root.Local != "bom" || !strings.HasPrefix(root.Space, ns) {
		return nil, fmt.Errorf("decode SBOM: %w (XML root <%s> in namespace %q)", ErrUnknownFormat, root.Local, root.Space)
	}
	return decodeCycloneDXXML(data, strings.TrimPrefix(root.Space, ns), lim)
}

func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// isTagValue reports whether data looks like an SPDX tag-value document:
// a "SPDXVersion:" tag at the start of a line among the first lines.
func isTagValue(data []byte) bool {
	head := data[:min(len(data), 64<<10)]
	for line := range bytes.Lines(head) {
		if bytes.HasPrefix(bytes.TrimSpace(line), []byte("SPDXVersion:")) {
			return true
		}
	}
	return false
}

// collector accumulates packages while a document is walked.
type collector struct {
	d         *Decoded
	lim       Limits
	extractor string
	seen      int
	unknownOS map[string]int // OS package types without a release, by type
}

func newCollector(f Format, spec, extractor string, lim Limits) *collector {
	return &collector{d: &Decoded{Format: f, SpecVersion: spec}, lim: lim, extractor: extractor, unknownOS: map[string]int{}}
}

// count enforces MaxComponents; call it once per component visited.
func (c *collector) count() error {
	c.seen++
	if c.seen > c.lim.MaxComponents {
		return fmt.Errorf("%w: more than %d components", ErrTooLarge, c.lim.MaxComponents)
	}
	return nil
}

// add turns one component into a package, or records why not.
func (c *collector) add(name, version, purl string, extra componentInfo) {
	if purl == "" {
		c.d.Skipped = append(c.d.Skipped, Skipped{Name: name, Version: version, Reason: "no package URL"})
		return
	}
	p, err := packageFromPURL(purl)
	if err != nil {
		c.d.Skipped = append(c.d.Skipped, Skipped{Name: name, Version: version, PURL: purl, Reason: err.Error()})
		return
	}
	p.Extractor = c.extractor
	extra.apply(&p)
	if isOSType(p.Type) && p.Ecosystem == "" {
		c.unknownOS[p.Type]++
	}
	c.d.Packages = append(c.d.Packages, p)
}

// finish fills in what needs the whole document: OS packages whose PURL
// named no release get the SBOM's OS, and the warnings are written.
func (c *collector) finish() *Decoded {
	if o := c.d.OS; o != nil {
		for i := range c.d.Packages {
			p := &c.d.Packages[i]
			if isOSType(p.Type) && p.Ecosystem == "" {
				if eco := ecosystemFor(p.Type, p.PURL, o); eco != "" {
					p.Ecosystem = eco
					c.unknownOS[p.Type]--
				}
			}
		}
	}
	for _, t := range []string{inventory.TypeDeb, inventory.TypeAPK, inventory.TypeRPM} {
		if n := c.unknownOS[t]; n > 0 {
			c.d.Warnings = append(c.d.Warnings, fmt.Sprintf(
				"%d %s packages name no distribution release (no distro qualifier and no operating-system component): they cannot be matched", n, t))
		}
	}
	return c.d
}

// componentInfo is what an SBOM records about a package beyond its PURL.
type componentInfo struct {
	location, locationDetail, layer string
	osPackage                       string
	platform                        string
	sourceName, sourceVersion       string
	ecosystem                       string
	licenses                        []string
	indirect, dev                   bool
}

func (ci *componentInfo) apply(p *inventory.Package) {
	if ci.location != "" {
		p.Location = ci.location
	}
	p.LocationDetail = ci.locationDetail
	p.Layer = ci.layer
	p.OSPackage = ci.osPackage
	p.Platform = ci.platform
	if ci.sourceName != "" {
		p.SourceName = ci.sourceName
	}
	if ci.sourceVersion != "" {
		p.SourceVersion = ci.sourceVersion
	}
	if ci.ecosystem != "" {
		// Bulwark's own SBOMs record the ecosystem the scan matched in,
		// which may carry detail a PURL cannot (a Red Hat repository).
		p.Ecosystem = ci.ecosystem
	}
	p.Licenses = ci.licenses
	p.Indirect = ci.indirect
	p.Dev = ci.dev
	// Source fields are set only where they differ from the binary
	// package's, as the OS extractors set them.
	if p.SourceName == p.Name {
		p.SourceName = ""
	}
	if p.SourceVersion == p.Version {
		p.SourceVersion = ""
	}
}
