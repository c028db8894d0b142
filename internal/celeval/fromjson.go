package celeval

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth matches encoding/json's nesting limit.
const maxJSONDepth = 10000

// errJSONDepth is encoding/json's message for the same condition.
var errJSONDepth = errors.New("exceeded max depth")

// parseJSON decodes the first JSON value of raw into the shapes CEL takes:
// map[string]any, []any, string, int64 (integers that fit), float64, bool
// and nil. It gives what encoding/json's Decoder with UseNumber followed
// by the integer/float split gives (a differential fuzz test holds it to
// that), without reflection or the intermediate json.Number strings: the
// webhook converts every object it judges, and that conversion was a
// sixth of a review's CPU.
//
// Like Decoder.Decode, it reads one value and ignores what follows it.
func parseJSON(raw []byte) (any, error) {
	p := jsonParser{s: raw}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	return v, nil
}

type jsonParser struct {
	s     []byte
	i     int
	arena *jsonArena // nil: every map is new
	// stack holds the elements of the arrays being read (see array).
	stack []any
	// top, when not nil, are the fields of a top-level object to build:
	// the others are read (checked exactly as when built, so a document
	// fails alike) and dropped.
	top map[string]bool
	// discard is set while reading a value that is dropped: nothing is
	// built or allocated.
	discard bool
}

// newMap is an empty object map, recycled from the arena when it has one.
func (p *jsonParser) newMap() map[string]any {
	a := p.arena
	if a == nil {
		return map[string]any{}
	}
	var m map[string]any
	if n := len(a.free); n > 0 {
		m, a.free = a.free[n-1], a.free[:n-1]
	} else {
		m = map[string]any{}
	}
	a.used = append(a.used, m)
	return m
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: "+format, append([]any{p.i}, args...)...)
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end of JSON input")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return nil, errJSONDepth
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxJSONDepth {
			return nil, errJSONDepth
		}
		return p.array(depth + 1)
	case c == '"':
		return p.strValue()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	default:
		return nil, p.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (p *jsonParser) literal(word string, v any) (any, error) {
	if len(p.s)-p.i < len(word) || string(p.s[p.i:p.i+len(word)]) != word {
		return nil, p.errorf("invalid literal, want %s", word)
	}
	p.i += len(word)
	return v, nil
}

func (p *jsonParser) object(depth int) (any, error) {
	p.i++ // {
	var m map[string]any
	if !p.discard {
		m = p.newMap()
	}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.errorf("looking for beginning of object key string")
		}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errorf("after object key: want ':'")
		}
		p.i++
		p.space()
		drop := !p.discard && depth == 1 && p.top != nil && !p.top[k]
		if drop {
			p.discard = true
		}
		v, err := p.value(depth)
		if drop {
			p.discard = false
		}
		if err != nil {
			return nil, err
		}
		if !p.discard && !drop {
			m[k] = v // the last of repeated keys wins, as in encoding/json
		}
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end of JSON input")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return m, nil
		default:
			return nil, p.errorf("after object key:value pair: want ',' or '}'")
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	p.i++ // [
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		if p.discard {
			return nil, nil
		}
		return make([]any, 0), nil
	}
	// Elements are gathered on a stack shared by the nested arrays, then
	// copied into a slice of the exact length: no growing by doubling.
	base := len(p.stack)
	defer func() { clear(p.stack[base:]); p.stack = p.stack[:base] }()
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		if !p.discard {
			p.stack = append(p.stack, v)
		}
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errorf("unexpected end of JSON input")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			if p.discard {
				return nil, nil
			}
			a := p.newArray(len(p.stack) - base)
			copy(a, p.stack[base:])
			return a, nil
		default:
			return nil, p.errorf("after array element: want ',' or ']'")
		}
	}
}

// newArray is a slice of n elements, carved from the arena's slab when
// it has room (recycled with the maps).
func (p *jsonParser) newArray(n int) []any {
	a := p.arena
	if a == nil {
		return make([]any, n)
	}
	a.need += n
	l := len(a.slab)
	if l+n > cap(a.slab) {
		return make([]any, n) // the slab grows on release, for the next one
	}
	a.slab = a.slab[:l+n]
	return a.slab[l : l+n : l+n]
}

// Interned string values: a document's repeated values (image names,
// "RuntimeDefault", "ALL") and those of the documents before it in the
// arena cost no allocation, boxing included. Bounded per arena.
const (
	maxInternLen = 128
	maxInterned  = 1024
)

// strValue is str as a JSON value, interned when an arena is in use.
func (p *jsonParser) strValue() (any, error) {
	if p.discard {
		return nil, p.skipStr()
	}
	a := p.arena
	if a == nil {
		return p.str()
	}
	// A plain string (printable ASCII, no escapes) is its own decoding:
	// look it up by its bytes, without converting them.
	end := p.i + 1
	for end < len(p.s) && end-p.i <= maxInternLen+1 {
		c := p.s[end]
		if c == '"' {
			if v, ok := a.strs[string(p.s[p.i+1:end])]; ok {
				p.i = end + 1
				return v, nil
			}
			break
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		end++
	}
	s, err := p.str()
	if err != nil {
		return nil, err
	}
	var v any = s
	if len(s) <= maxInternLen && len(a.strs) < maxInterned {
		if a.strs == nil {
			a.strs = map[string]any{}
		}
		a.strs[s] = v
	}
	return v, nil
}

// number validates the JSON number grammar, then converts as
// json.Number.Int64, falling back to Float64 (whose range error is
// ignored, as FromJSON always did).
func (p *jsonParser) number() (any, error) {
	start := p.i
	s := p.s
	if p.i < len(s) && s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(s) && s[p.i] == '0':
		p.i++
	case p.i < len(s) && s[p.i] >= '1' && s[p.i] <= '9':
		for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
			p.i++
		}
	default:
		return nil, p.errorf("invalid number")
	}
	integer := true
	if p.i < len(s) && s[p.i] == '.' {
		integer = false
		p.i++
		d := p.i
		for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
			p.i++
		}
		if p.i == d {
			return nil, p.errorf("invalid number: no digit after the decimal point")
		}
	}
	if p.i < len(s) && (s[p.i] == 'e' || s[p.i] == 'E') {
		integer = false
		p.i++
		if p.i < len(s) && (s[p.i] == '+' || s[p.i] == '-') {
			p.i++
		}
		d := p.i
		for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
			p.i++
		}
		if p.i == d {
			return nil, p.errorf("invalid number: no digit in the exponent")
		}
	}
	if p.discard {
		return nil, nil // the conversion cannot fail
	}
	text := string(s[start:p.i])
	if integer {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, nil
		}
	}
	f, _ := strconv.ParseFloat(text, 64)
	return f, nil
}

// commonKeys are field names of Kubernetes objects, shared by every parse
// instead of allocated once per occurrence (read-only after init).
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations", "uid",
		"generateName", "creationTimestamp", "resourceVersion", "generation", "ownerReferences", "managedFields", "spec",
		"status", "template", "selector", "matchLabels", "replicas", "containers", "initContainers", "ephemeralContainers",
		"image", "imagePullPolicy", "command", "args", "ports", "containerPort", "protocol", "env", "value", "valueFrom",
		"resources", "limits", "requests", "cpu", "memory", "securityContext", "capabilities", "drop", "add",
		"allowPrivilegeEscalation", "runAsNonRoot", "runAsUser", "runAsGroup", "readOnlyRootFilesystem", "privileged",
		"seccompProfile", "type", "readinessProbe", "livenessProbe", "startupProbe", "httpGet", "path", "port",
		"volumeMounts", "mountPath", "volumes", "serviceAccountName", "automountServiceAccountToken", "hostNetwork",
		"hostPID", "hostIPC", "nodeSelector", "tolerations", "key", "operator", "effect", "terminationMessagePath",
		"terminationMessagePolicy", "restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds",
		"strategy", "rollingUpdate", "maxSurge", "maxUnavailable", "revisionHistoryLimit", "progressDeadlineSeconds"} {
		m[k] = k
	}
	return m
}()

// key reads an object key, without allocating for the common ones.
func (p *jsonParser) key() (string, error) {
	if p.discard {
		return "", p.skipStr()
	}
	if end := p.i + 1; end < len(p.s) {
		for end < len(p.s) && p.s[end] != '"' && p.s[end] != '\\' {
			end++
		}
		if end < len(p.s) && p.s[end] == '"' {
			if k, ok := commonKeys[string(p.s[p.i+1:end])]; ok {
				p.i = end + 1
				return k, nil
			}
		}
	}
	return p.str()
}

// str reads a string at p.i (on its opening quote) the way encoding/json
// unquotes: escapes decoded, invalid UTF-8 and lone surrogates replaced
// by U+FFFD, control characters refused.
func (p *jsonParser) str() (string, error) {
	p.i++ // "
	start := p.i
	s := p.s
	// Fast path: plain ASCII up to the closing quote.
	for p.i < len(s) {
		c := s[p.i]
		if c == '"' {
			out := string(s[start:p.i])
			p.i++
			return out, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	buf := make([]byte, p.i-start, p.i-start+16)
	copy(buf, s[start:p.i])
	for p.i < len(s) {
		c := s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", p.errorf("invalid character %q in string literal", c)
		case c == '\\':
			p.i++
			if p.i >= len(s) {
				return "", p.errorf("unexpected end of JSON input")
			}
			e := s[p.i]
			p.i++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(s[p.i:])
				if !ok {
					return "", p.errorf("invalid \\u escape in string literal")
				}
				p.i += 4
				if utf16.IsSurrogate(r) {
					// A pair is consumed whole; anything else leaves
					// U+FFFD and the next escape to be read on its own.
					if len(s)-p.i >= 6 && s[p.i] == '\\' && s[p.i+1] == 'u' {
						if r2, ok := hex4(s[p.i+2:]); ok {
							if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
								p.i += 6
								buf = utf8.AppendRune(buf, d)
								break
							}
						}
					}
					r = unicode.ReplacementChar
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", p.errorf("invalid character %q in string escape code", e)
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(s[p.i:])
			p.i += size
			buf = utf8.AppendRune(buf, r) // RuneError for an invalid byte, as encoding/json
		}
	}
	return "", p.errorf("unexpected end of JSON input")
}

// skipStr reads past a string as str does, failing where str fails,
// without decoding it.
func (p *jsonParser) skipStr() error {
	p.i++ // "
	s := p.s
	for p.i < len(s) {
		c := s[p.i]
		switch {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.errorf("invalid character %q in string literal", c)
		case c == '\\':
			p.i++
			if p.i >= len(s) {
				return p.errorf("unexpected end of JSON input")
			}
			e := s[p.i]
			p.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				// A surrogate pair's second escape is valid on its own
				// too: reading it separately fails where str fails.
				if _, ok := hex4(s[p.i:]); !ok {
					return p.errorf("invalid \\u escape in string literal")
				}
				p.i += 4
			default:
				return p.errorf("invalid character %q in string escape code", e)
			}
		default:
			p.i++ // any other byte, invalid UTF-8 included, is accepted
		}
	}
	return p.errorf("unexpected end of JSON input")
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
