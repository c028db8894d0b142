package rules

import (
	"strconv"
	"strings"
)

// template is an output format compiled once: literal text and field
// extractors, rendered only when a rule matches.
type template struct {
	parts []tplPart
}

type tplPart struct {
	lit string
	f   *field
	idx int // proc.aname[N]; -1 none
}

// compileTemplate resolves every %field of an output. An unknown field makes
// the rule unsupported, like a condition field would.
func (c *compiler) compileTemplate(s string) (template, error) {
	var t template
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			break
		}
		j := i + 1
		for j < len(s) && (s[j] == '.' || s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		name := strings.TrimRight(s[i+1:j], ".")
		j = i + 1 + len(name)
		if !strings.Contains(name, ".") { // a literal percent sign
			t.parts = append(t.parts, tplPart{lit: s[:j], idx: -1})
			s = s[j:]
			continue
		}
		hasArg, arg := false, ""
		if j < len(s) && s[j] == '[' {
			if k := strings.IndexByte(s[j:], ']'); k > 0 {
				hasArg, arg = true, s[j+1:j+k]
				j += k + 1
			}
		}
		f, idx, err := c.lookupField(name, hasArg, arg, 0)
		if err != nil {
			return t, err
		}
		if s[:i] != "" {
			t.parts = append(t.parts, tplPart{lit: s[:i], idx: -1})
		}
		t.parts = append(t.parts, tplPart{f: f, idx: idx})
		s = s[j:]
	}
	if s != "" {
		t.parts = append(t.parts, tplPart{lit: s, idx: -1})
	}
	return t, nil
}

const notAvailable = "<NA>"

func (t *template) appendTo(b []byte, e *Event) []byte {
	for _, p := range t.parts {
		if p.f == nil {
			b = append(b, p.lit...)
			continue
		}
		b = appendField(b, p.f, p.idx, e)
	}
	return b
}

func appendField(b []byte, f *field, idx int, e *Event) []byte {
	switch {
	case f.arg == argIndex && idx >= 0:
		if v, ok := f.idx(e, idx); ok {
			return append(b, v...)
		}
	case f.arg == argIndex:
		if len(e.Proc.Ancestors) == 0 {
			break
		}
		for i, a := range e.Proc.Ancestors {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, a.Name...)
		}
		return b
	case f.kind == kindBool:
		if v, ok := f.num(e); ok {
			return strconv.AppendBool(b, v != 0)
		}
	case f.num != nil:
		if v, ok := f.num(e); ok {
			return strconv.AppendInt(b, v, 10)
		}
	case f.str != nil:
		if v, ok := f.str(e); ok {
			return append(b, v...)
		}
	case f.ip != nil:
		if v, ok := f.ip(e); ok {
			return v.AppendTo(b)
		}
	case f.ips != nil:
		if a, r, ok := f.ips(e); ok {
			b = a.AppendTo(b)
			if r != a {
				b = append(b, ',')
				b = r.AppendTo(b)
			}
			return b
		}
	case f.strs != nil:
		if vs, ok := f.strs(e); ok {
			for i, v := range vs {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, v...)
			}
			return b
		}
	}
	return append(b, notAvailable...)
}
