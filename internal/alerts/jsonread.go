package alerts

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"
)

// A reader and a writer for the JSON of one alert (optionally with a
// "kind" key first, the export log's record), without encoding/json's
// reflection, which costs ~10 µs of the ~15 µs of CPU central spends
// decoding an ingested alert, and 13 µs per export log record read back.
//
// ReadJSON takes the form json.Marshal writes — keys spelled exactly, in
// any order, no whitespace, string values (an object or null for the
// evidence) — and declines everything else (unknown or differently cased
// keys, whitespace, numbers, malformed UTF-8, control characters), which
// the caller then hands to encoding/json. What it accepts it decodes as
// json.Unmarshal does, for any input (FuzzReadJSON compares them), with
// one documented exception: the evidence object is delimited, not
// validated (its brackets and strings are followed). Callers validate it
// (Alert.Validate checks json.Valid) or wrote it themselves (the store's
// export log).

// The payload's keys in the order json.Marshal writes them
// ("kind", then Alert's fields in declaration order).
const (
	pkKind = iota
	pkID
	pkTime
	pkSource
	pkRule
	pkRuleVersion
	pkSeverity
	pkTitle
	pkMitreTactic
	pkMitreTechnique
	pkCluster
	pkNamespace
	pkPod
	pkContainer
	pkContainerID
	pkImage
	pkImageDigest
	pkNode
	pkWorkload
	pkEvidence
	pkFingerprint
	pkCount
)

// payloadRequired are the keys without omitempty: json.Marshal always
// writes them.
const payloadRequired = 1<<pkKind | 1<<pkID | 1<<pkTime | 1<<pkSource | 1<<pkRule | 1<<pkSeverity | 1<<pkTitle

// payloadKeyIndex finds a key's index (-1: not a payload key, or not
// spelled as json.Marshal spells it).
func payloadKeyIndex(k string) int {
	switch k {
	case "kind":
		return pkKind
	case "id":
		return pkID
	case "time":
		return pkTime
	case "source":
		return pkSource
	case "rule":
		return pkRule
	case "rule_version":
		return pkRuleVersion
	case "severity":
		return pkSeverity
	case "title":
		return pkTitle
	case "mitre_tactic":
		return pkMitreTactic
	case "mitre_technique":
		return pkMitreTechnique
	case "cluster":
		return pkCluster
	case "namespace":
		return pkNamespace
	case "pod":
		return pkPod
	case "container":
		return pkContainer
	case "container_id":
		return pkContainerID
	case "image":
		return pkImage
	case "image_digest":
		return pkImageDigest
	case "node":
		return pkNode
	case "workload":
		return pkWorkload
	case "evidence":
		return pkEvidence
	case "fingerprint":
		return pkFingerprint
	}
	return -1
}

// stringField is the alert's string field of a payload key (nil for kind,
// time, source, severity and evidence).
func stringField(a *Alert, k int) *string {
	switch k {
	case pkID:
		return &a.ID
	case pkRule:
		return &a.Rule
	case pkRuleVersion:
		return &a.RuleVersion
	case pkTitle:
		return &a.Title
	case pkMitreTactic:
		return &a.MitreTactic
	case pkMitreTechnique:
		return &a.MitreTechnique
	case pkCluster:
		return &a.Cluster
	case pkNamespace:
		return &a.Namespace
	case pkPod:
		return &a.Pod
	case pkContainer:
		return &a.Container
	case pkContainerID:
		return &a.ContainerID
	case pkImage:
		return &a.Image
	case pkImageDigest:
		return &a.ImageDigest
	case pkNode:
		return &a.Node
	case pkWorkload:
		return &a.Workload
	case pkFingerprint:
		return &a.Fingerprint
	}
	return nil
}

// AppendJSONString appends s quoted as encoding/json quotes strings (HTML
// escaping on, its default): <, > and & as \u003c…, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func AppendJSONString(b []byte, s string) []byte {
	return appendJSONString(b, s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes strings (HTML
// escaping on, its default): <, > and & as \u003c…, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// CanonicalJSON reports whether v (valid JSON, as every stored evidence
// is) is what json.Marshal writes for it as a json.RawMessage:
// compact (no whitespace between tokens) and HTML-safe (no <, > or &, no
// U+2028 or U+2029, which it escapes).
func CanonicalJSON(v []byte) bool {
	end, ok := scanJSONValue(v, 0)
	return ok && end == len(v)
}

// scanJSONValue finds the end of the JSON value starting at v[i] (valid
// JSON assumed: brackets and strings are followed, scalars are skipped to
// the next delimiter) and reports whether it is in json.Marshal's
// canonical form (see canonicalJSONValue). end is -1 when v ends first.
func scanJSONValue(v []byte, i int) (end int, canonical bool) {
	canonical = true
	depth := 0
	for i < len(v) {
		switch c := v[i]; c {
		case '{', '[':
			if depth++; depth > maxReadDepth {
				return -1, false // encoding/json's answer (its depth limit) is the one to give
			}
		case '}', ']':
			depth--
			if depth <= 0 {
				return i + 1, canonical && depth == 0
			}
		case '"':
			for i++; i < len(v); i++ {
				c := v[i]
				if c == '\\' {
					i++
					continue
				}
				if c == '"' {
					break
				}
				if c == '<' || c == '>' || c == '&' || c < 0x20 {
					canonical = false
				}
				if c == 0xE2 && i+2 < len(v) && v[i+1] == 0x80 && (v[i+2] == 0xA8 || v[i+2] == 0xA9) {
					canonical = false
				}
			}
			if i >= len(v) {
				return -1, false
			}
			if depth == 0 {
				return i + 1, canonical
			}
		case ' ', '\t', '\n', '\r':
			canonical = false
		case ',', ':':
		default:
			// A number or a literal: runs to the next delimiter.
			for i+1 < len(v) && !isJSONDelim(v[i+1]) {
				i++
			}
			if depth == 0 {
				return i + 1, canonical
			}
		}
		i++
	}
	return -1, false
}

// maxReadDepth is the deepest evidence the reader delimits; deeper
// values are left to encoding/json.
const maxReadDepth = 512

func isJSONDelim(c byte) bool {
	switch c {
	case ',', ':', '{', '}', '[', ']', '"', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// ReadJSON reads the JSON object p, an alert with (withKind) or without a
// "kind" key. ok is false when p is not in the form json.Marshal writes
// (see the comment at the top of the file): the caller must then decode it
// with encoding/json, which handles every form. When ok, the result is
// what json.Unmarshal gives, and canonical reports whether p is byte for
// byte what json.Marshal writes for it. The evidence shares p's memory (p
// must not change).
func ReadJSON(p []byte, withKind bool) (kind string, a Alert, canonical, ok bool) {
	if len(p) < 2 || p[0] != '{' || p[len(p)-1] != '}' {
		return "", a, false, false
	}
	kind, a, end, canonical, ok := readObject(p, string(p), 0, withKind)
	if !ok || end != len(p) {
		return "", Alert{}, false, false
	}
	return kind, a, canonical, true
}

// ReadJSONString is ReadJSON for JSON held in a string, without the copy
// ReadJSON makes of p: every string field and the evidence share s's
// memory (the evidence's bytes must not be changed). The export log's
// reader uses it: a record is read back once per delivery, and that copy
// was one allocation of the record's size each time.
func ReadJSONString(s string, withKind bool) (kind string, a Alert, canonical, ok bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return "", a, false, false
	}
	p := unsafe.Slice(unsafe.StringData(s), len(s))
	kind, a, end, canonical, ok := readObject(p, s, 0, withKind)
	if !ok || end != len(p) {
		return "", Alert{}, false, false
	}
	return kind, a, canonical, true
}

// readObject reads the object starting at s[i] (s is p as a string; every
// string field is a slice of it) and returns the index after it.
func readObject(p []byte, s string, i int, withKind bool) (kind string, a Alert, end int, canonical, ok bool) {
	if i >= len(s) || s[i] != '{' {
		return "", a, 0, false, false
	}
	canonical = true
	seen, last := 0, -1
	i++
	for {
		// Key: a known field, spelled exactly.
		if i >= len(s) || s[i] != '"' {
			return "", a, 0, false, false
		}
		j := i + 1
		for j < len(s) && s[j] != '"' && s[j] != '\\' {
			j++
		}
		if j >= len(s) || s[j] != '"' {
			return "", a, 0, false, false
		}
		k := payloadKeyIndex(s[i+1 : j])
		if k < 0 || (k == pkKind && !withKind) || j+1 >= len(s) || s[j+1] != ':' {
			return "", a, 0, false, false
		}
		if k <= last {
			canonical = false // out of order or repeated (the last one wins, as in encoding/json)
		}
		last = max(last, k)
		seen |= 1 << k
		i = j + 2
		if i >= len(s) {
			return "", a, 0, false, false
		}
		if k == pkEvidence && strings.HasPrefix(s[i:], "null") {
			a.Evidence = json.RawMessage(p[i : i+4 : i+4])
			i += 4
		} else if k == pkEvidence {
			if s[i] != '{' {
				return "", a, 0, false, false
			}
			end, canon := scanJSONValue(p, i)
			if end < 0 {
				return "", a, 0, false, false
			}
			a.Evidence = json.RawMessage(p[i:end:end])
			canonical = canonical && canon
			i = end
		} else {
			v, end, canon, ok := readJSONString(s, i)
			if !ok {
				return "", a, 0, false, false
			}
			canonical = canonical && canon
			tok := s[i:end]
			i = end
			if v == "" && payloadRequired&(1<<k) == 0 {
				canonical = false // json.Marshal omits empty optional fields
			}
			switch k {
			case pkKind:
				kind = v
			case pkTime:
				var t time.Time
				if err := t.UnmarshalJSON([]byte(tok)); err != nil {
					return "", a, 0, false, false
				}
				a.Time = t
				if canonical {
					var buf [40]byte
					canonical = string(t.AppendFormat(buf[:0], time.RFC3339Nano)) == v
				}
			case pkSource:
				a.Source = Source(v)
			case pkSeverity:
				if err := a.Severity.UnmarshalText([]byte(v)); err != nil {
					return "", a, 0, false, false
				}
				canonical = canonical && a.Severity.String() == v
			default:
				*stringField(&a, k) = v
			}
		}
		if i >= len(s) {
			return "", a, 0, false, false
		}
		if s[i] == '}' {
			i++
			break
		}
		if s[i] != ',' {
			return "", a, 0, false, false
		}
		i++
	}
	required := payloadRequired
	if !withKind {
		required &^= 1 << pkKind
	}
	canonical = canonical && seen&required == required
	return kind, a, i, canonical, true
}

// plainJSONByte marks the bytes a JSON string holds as themselves in
// json.Marshal's form: printable ASCII but '"', '\\', '<', '>' and '&'.
var plainJSONByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// readJSONString reads the JSON string starting at s[i] (its opening
// quote). Without escapes the value is a slice of s; with escapes it is
// unquoted by encoding/json. canonical reports whether the token is how
// json.Marshal quotes the value. ok is false for what this reader leaves
// to encoding/json: not a string, control characters, malformed UTF-8.
func readJSONString(s string, i int) (v string, end int, canonical, ok bool) {
	if s[i] != '"' {
		return "", 0, false, false
	}
	canonical = true
	escaped, ascii := false, true
	j := i + 1
	for ; j < len(s); j++ {
		// Runs of plain printable ASCII (most of every value) are skipped
		// a byte per table lookup.
		for j < len(s) && plainJSONByte[s[j]] {
			j++
		}
		if j >= len(s) {
			break
		}
		c := s[j]
		if c == '"' {
			break
		}
		switch {
		case c == '\\':
			escaped = true
			j++
		case c < 0x20:
			return "", 0, false, false
		case c == '<' || c == '>' || c == '&':
			canonical = false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if j >= len(s) {
		return "", 0, false, false
	}
	end = j + 1
	raw := s[i+1 : j]
	if !escaped {
		if !ascii {
			if !utf8.ValidString(raw) {
				return "", 0, false, false
			}
			for k := 0; k+2 < len(raw); k++ {
				if raw[k] == 0xE2 && raw[k+1] == 0x80 && (raw[k+2] == 0xA8 || raw[k+2] == 0xA9) {
					canonical = false
				}
			}
		}
		return raw, end, canonical, true
	}
	return unquoteJSON(s[i:end], end, canonical)
}

// unquoteJSON is readJSONString's path for a string with escapes (its own
// function so that the common path's result does not escape to the heap).
func unquoteJSON(tok string, end int, canonical bool) (string, int, bool, bool) {
	var v string
	if err := json.Unmarshal([]byte(tok), &v); err != nil {
		return "", 0, false, false
	}
	if canonical {
		canonical = string(appendJSONString(nil, v)) == tok
	}
	return v, end, canonical, true
}
