package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// pred is a compiled condition.
type pred func(*Event) bool

// unsupportedError marks a condition Bulwark cannot evaluate faithfully (an
// unknown field, a field of another source, an operator it does not
// implement): the rule is reported and skipped, never evaluated wrong.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

// ErrUnsupported is matched (errors.Is) by errors for rules that were skipped
// because they use a field or operator Bulwark cannot evaluate.
var ErrUnsupported = errors.New("unsupported by Bulwark")

func (e *unsupportedError) Is(target error) bool { return target == ErrUnsupported }

type macroDef struct {
	name string
	ast  node
	file string
	line int
}

type compiler struct {
	fields   fieldIndex
	macros   map[string]*macroDef
	lists    map[string][]string
	source   Source
	visiting map[string]bool
}

// compile turns an AST into a predicate and the set of event types it can
// match (all types when it does not say).
func (c *compiler) compile(n node) (pred, typeSet, error) {
	switch n := n.(type) {
	case *andNode:
		ps := make([]pred, 0, len(n.terms))
		ts := allTypes()
		for _, t := range n.terms {
			p, s, err := c.compile(t)
			if err != nil {
				return nil, ts, err
			}
			ps = append(ps, p)
			ts = ts.and(s)
		}
		return andPred(ps), ts, nil
	case *orNode:
		ps := make([]pred, 0, len(n.terms))
		var ts typeSet
		for _, t := range n.terms {
			p, s, err := c.compile(t)
			if err != nil {
				return nil, ts, err
			}
			ps = append(ps, p)
			ts = ts.or(s)
		}
		return orPred(ps), ts, nil
	case *notNode:
		p, _, err := c.compile(n.x)
		if err != nil {
			return nil, typeSet{}, err
		}
		return func(e *Event) bool { return !p(e) }, allTypes(), nil
	case *macroRef:
		m, ok := c.macros[n.name]
		if !ok {
			return nil, typeSet{}, &SyntaxError{n.pos, fmt.Sprintf("undefined macro %q", n.name)}
		}
		if c.visiting[n.name] {
			return nil, typeSet{}, &SyntaxError{n.pos, fmt.Sprintf("macro %q refers to itself", n.name)}
		}
		c.visiting[n.name] = true
		defer delete(c.visiting, n.name)
		p, ts, err := c.compile(m.ast)
		if err != nil {
			var ue *unsupportedError
			if errors.As(err, &ue) {
				return nil, ts, &unsupportedError{fmt.Sprintf("macro %s (%s:%d): %s", n.name, m.file, m.line, ue.msg)}
			}
			return nil, ts, fmt.Errorf("in macro %s (%s:%d): %w", n.name, m.file, m.line, err)
		}
		return p, ts, nil
	case *checkNode:
		return c.check(n)
	}
	return nil, typeSet{}, fmt.Errorf("internal: unknown node %T", n)
}

func andPred(ps []pred) pred {
	switch len(ps) {
	case 1:
		return ps[0]
	case 2:
		a, b := ps[0], ps[1]
		return func(e *Event) bool { return a(e) && b(e) }
	case 3:
		a, b, c := ps[0], ps[1], ps[2]
		return func(e *Event) bool { return a(e) && b(e) && c(e) }
	}
	return func(e *Event) bool {
		for _, p := range ps {
			if !p(e) {
				return false
			}
		}
		return true
	}
}

func orPred(ps []pred) pred {
	switch len(ps) {
	case 1:
		return ps[0]
	case 2:
		a, b := ps[0], ps[1]
		return func(e *Event) bool { return a(e) || b(e) }
	}
	return func(e *Event) bool {
		for _, p := range ps {
			if p(e) {
				return true
			}
		}
		return false
	}
}

// lookupField resolves a field name for the compiler's source.
func (c *compiler) lookupField(name string, hasArg bool, arg string, pos int) (*field, int, error) {
	f, ok := c.fields[name]
	if !ok {
		return nil, 0, &unsupportedError{fmt.Sprintf("field %q is not one Bulwark can fill (see FIELDS.md)", name)}
	}
	if f.source != c.source {
		return nil, 0, &unsupportedError{fmt.Sprintf("field %q belongs to source %s, not %s", name, f.source, c.source)}
	}
	idx := -1
	if hasArg {
		if f.arg != argIndex {
			return nil, 0, &unsupportedError{fmt.Sprintf("field %q takes no argument [%s]", name, arg)}
		}
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > 64 {
			return nil, 0, &SyntaxError{pos, fmt.Sprintf("field %s: argument [%s] must be an ancestor index 0..64", name, arg)}
		}
		idx = n
	}
	return f, idx, nil
}

// expand resolves list references among the operand values.
func (c *compiler) expand(vals []value) []string {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if !v.quoted {
			if items, ok := c.lists[v.text]; ok {
				out = append(out, items...)
				continue
			}
		}
		out = append(out, v.text)
	}
	return out
}

func (c *compiler) check(n *checkNode) (pred, typeSet, error) {
	f, idx, err := c.lookupField(n.field, n.hasArg, n.arg, n.pos)
	if err != nil {
		return nil, typeSet{}, err
	}
	all := allTypes()
	switch n.op {
	case "bcontains", "bstartswith", "iglob", "regex":
		return nil, all, &unsupportedError{fmt.Sprintf("operator %q is not supported", n.op)}
	}
	bad := func(msg string) (pred, typeSet, error) {
		return nil, all, &SyntaxError{n.pos, fmt.Sprintf("%s %s: %s", n.field, n.op, msg)}
	}
	vals := c.expand(n.values)

	// Accessors as string sources.
	k := f.kind
	if f.arg == argIndex {
		if idx >= 0 {
			k = kindString
		} else {
			k = kindStrings
		}
	}

	if n.op == "exists" {
		switch {
		case f.arg == argIndex && idx >= 0:
			get := f.idx
			return func(e *Event) bool { _, ok := get(e, idx); return ok }, all, nil
		case f.arg == argIndex:
			return func(e *Event) bool { return len(e.Proc.Ancestors) > 0 }, all, nil
		case f.str != nil:
			get := f.str
			return func(e *Event) bool { _, ok := get(e); return ok }, all, nil
		case f.num != nil:
			get := f.num
			return func(e *Event) bool { _, ok := get(e); return ok }, all, nil
		case f.ip != nil:
			get := f.ip
			return func(e *Event) bool { _, ok := get(e); return ok }, all, nil
		case f.ips != nil:
			get := f.ips
			return func(e *Event) bool { _, _, ok := get(e); return ok }, all, nil
		case f.strs != nil:
			get := f.strs
			return func(e *Event) bool { _, ok := get(e); return ok }, all, nil
		}
	}
	if len(vals) == 0 && !n.isList {
		return bad("missing value")
	}

	switch k {
	case kindType:
		var set typeSet
		for _, v := range vals {
			if t, ok := ParseEventType(v); ok {
				set.add(t)
			}
		}
		switch n.op {
		case "=", "==", "in", "intersects":
			if !n.isList && len(vals) != 1 {
				return bad("one value expected")
			}
			return func(e *Event) bool { return set.has(e.Type) }, set, nil
		case "!=":
			return func(e *Event) bool { return e.Type != EventUnknown && !set.has(e.Type) }, all, nil
		}
		return bad("operator not valid for evt.type")

	case kindInt, kindBool:
		nums := make([]int64, len(vals))
		for i, v := range vals {
			var x int64
			var perr error
			if k == kindBool {
				switch strings.ToLower(v) {
				case "true":
					x = 1
				case "false":
					x = 0
				default:
					perr = errors.New("not true/false")
				}
			} else {
				x, perr = strconv.ParseInt(v, 0, 64)
			}
			if perr != nil {
				return bad(fmt.Sprintf("value %q is not a %s", v, kindNames[k]))
			}
			nums[i] = x
		}
		get := f.num
		if n.op == "in" || n.op == "intersects" {
			return func(e *Event) bool {
				x, ok := get(e)
				if !ok {
					return false
				}
				for _, y := range nums {
					if x == y {
						return true
					}
				}
				return false
			}, all, nil
		}
		if len(nums) != 1 {
			return bad("one value expected")
		}
		y := nums[0]
		if k == kindBool && n.op != "=" && n.op != "==" && n.op != "!=" {
			return bad("operator not valid for a bool field")
		}
		switch n.op {
		case "=", "==":
			return func(e *Event) bool { x, ok := get(e); return ok && x == y }, all, nil
		case "!=":
			return func(e *Event) bool { x, ok := get(e); return ok && x != y }, all, nil
		case "<":
			return func(e *Event) bool { x, ok := get(e); return ok && x < y }, all, nil
		case "<=":
			return func(e *Event) bool { x, ok := get(e); return ok && x <= y }, all, nil
		case ">":
			return func(e *Event) bool { x, ok := get(e); return ok && x > y }, all, nil
		case ">=":
			return func(e *Event) bool { x, ok := get(e); return ok && x >= y }, all, nil
		}
		return bad("operator not valid for a numeric field")

	case kindIP, kindNet:
		prefixes := make([]netip.Prefix, len(vals))
		for i, v := range vals {
			p, perr := parsePrefix(v)
			if perr != nil {
				return bad(fmt.Sprintf("value %q is not an IP address or CIDR", v))
			}
			prefixes[i] = p
		}
		var match func(*Event) (bool, bool)
		if k == kindIP {
			get := f.ip
			match = func(e *Event) (bool, bool) {
				a, ok := get(e)
				if !ok {
					return false, false
				}
				a = a.Unmap()
				for _, p := range prefixes {
					if p.Contains(a) {
						return true, true
					}
				}
				return false, true
			}
		} else {
			get := f.ips
			match = func(e *Event) (bool, bool) {
				a, b, ok := get(e)
				if !ok {
					return false, false
				}
				a, b = a.Unmap(), b.Unmap()
				for _, p := range prefixes {
					if p.Contains(a) || p.Contains(b) {
						return true, true
					}
				}
				return false, true
			}
		}
		switch n.op {
		case "=", "==", "in", "intersects":
			if !n.isList && len(prefixes) != 1 {
				return bad("one value expected")
			}
			return func(e *Event) bool { m, _ := match(e); return m }, all, nil
		case "!=":
			return func(e *Event) bool { m, ok := match(e); return ok && !m }, all, nil
		}
		return bad("operator not valid for an IP field")
	}

	// String and string-list fields: build a predicate on one string.
	sp, err := stringPred(n.op, vals, n.isList, k == kindStrings)
	if err != nil {
		return bad(err.Error())
	}
	neg := n.op == "!="
	if k == kindString {
		var get func(*Event) (string, bool)
		if f.arg == argIndex {
			gi := f.idx
			get = func(e *Event) (string, bool) { return gi(e, idx) }
		} else {
			get = f.str
		}
		return func(e *Event) bool { v, ok := get(e); return ok && sp(v) }, all, nil
	}
	// Several values. "in" means every value is in the set (and there is
	// one); "!=" none is equal; the other operators hold for any value.
	every := n.op == "in"
	if f.arg == argIndex { // proc.aname without index: the ancestors
		return func(e *Event) bool {
			as := e.Proc.Ancestors
			if len(as) == 0 {
				return false
			}
			for i := range as {
				if done, r := multiStep(sp(as[i].Name), neg, every); done {
					return r
				}
			}
			return every || neg
		}, all, nil
	}
	get := f.strs
	return func(e *Event) bool {
		vs, ok := get(e)
		if !ok || len(vs) == 0 {
			return false
		}
		for _, v := range vs {
			if done, r := multiStep(sp(v), neg, every); done {
				return r
			}
		}
		return every || neg
	}, all, nil
}

// multiStep folds one value's test into a multi-valued comparison: for "!="
// (sp is equality) a hit decides false, for "in" a miss decides false, for
// the rest a hit decides true.
func multiStep(m, neg, every bool) (done, result bool) {
	switch {
	case neg:
		return m, false
	case every:
		return !m, false
	default:
		return m, true
	}
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// stringPred compiles an operator and its operands into a test of one
// string. For a multi-valued field's "!=", it returns the equality test and
// the caller negates over all values.
func stringPred(op string, vals []string, isList, multi bool) (func(string) bool, error) {
	one := func() (string, error) {
		if isList || len(vals) != 1 {
			return "", fmt.Errorf("one value expected")
		}
		return vals[0], nil
	}
	switch op {
	case "=", "==":
		c, err := one()
		return func(s string) bool { return s == c }, err
	case "!=":
		c, err := one()
		if multi {
			return func(s string) bool { return s == c }, err
		}
		return func(s string) bool { return s != c }, err
	case "contains":
		c, err := one()
		return func(s string) bool { return strings.Contains(s, c) }, err
	case "icontains":
		c, err := one()
		c = strings.ToLower(c)
		return func(s string) bool { return containsFold(s, c) }, err
	case "startswith":
		c, err := one()
		return func(s string) bool { return strings.HasPrefix(s, c) }, err
	case "endswith":
		c, err := one()
		return func(s string) bool { return strings.HasSuffix(s, c) }, err
	case "glob":
		c, err := one()
		if err == nil {
			err = validGlob(c)
		}
		return func(s string) bool { return globMatch(c, s) }, err
	case "pmatch":
		ps := make([]string, 0, len(vals))
		for _, v := range vals {
			ps = append(ps, strings.TrimSuffix(v, "/"))
		}
		return func(s string) bool {
			for _, p := range ps {
				if pathPrefix(s, p) {
					return true
				}
			}
			return false
		}, nil
	case "in", "intersects":
		if len(vals) > 8 {
			set := make(map[string]struct{}, len(vals))
			for _, v := range vals {
				set[v] = struct{}{}
			}
			return func(s string) bool { _, ok := set[s]; return ok }, nil
		}
		vs := append([]string(nil), vals...)
		return func(s string) bool {
			for _, v := range vs {
				if s == v {
					return true
				}
			}
			return false
		}, nil
	case "<", "<=", ">", ">=":
		return nil, fmt.Errorf("ordering operators need a numeric field")
	}
	return nil, fmt.Errorf("unknown operator %q", op)
}

// pathPrefix reports whether path p is prefix or lies under it.
func pathPrefix(s, p string) bool {
	if p == "" {
		return strings.HasPrefix(s, "/")
	}
	return strings.HasPrefix(s, p) && (len(s) == len(p) || s[len(p)] == '/')
}

// containsFold is an allocation-free ASCII case-insensitive Contains; lower
// is already lower case.
func containsFold(s, lower string) bool {
	n := len(lower)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}
