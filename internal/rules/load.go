package rules

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxRuleFileSize bounds one rules file.
const MaxRuleFileSize = 16 << 20

// RuleFile is one rules document in the Falco rules YAML format.
type RuleFile struct {
	Name string // used in messages: "name:line: ..."
	Data []byte
}

// LoadError is a malformed rules file: its position and what is wrong.
type LoadError struct {
	File string
	Line int
	Msg  string
}

func (e *LoadError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Skipped is a rule that loaded but will not run, and why (a field or
// operator Bulwark cannot evaluate, or a source it does not handle).
type Skipped struct {
	File   string
	Line   int
	Rule   string
	Reason string
}

func (s Skipped) String() string {
	return fmt.Sprintf("%s:%d: rule %q skipped: %s", s.File, s.Line, s.Rule, s.Reason)
}

// Priority is a rule's severity, Falco's names.
type Priority uint8

// Priorities from most to least severe.
const (
	PriorityEmergency Priority = iota
	PriorityAlert
	PriorityCritical
	PriorityError
	PriorityWarning
	PriorityNotice
	PriorityInformational
	PriorityDebug
)

var priorityNames = [...]string{"EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFORMATIONAL", "DEBUG"}

func (p Priority) String() string {
	if int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return "UNKNOWN"
}

// ParsePriority accepts Falco's priority names in any case ("INFO" too).
func ParsePriority(s string) (Priority, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "INFO" {
		return PriorityInformational, true
	}
	for i, n := range priorityNames {
		if n == u {
			return Priority(i), true
		}
	}
	return 0, false
}

type exceptionDef struct {
	name   string
	fields []string
	comps  []string
	single bool      // fields given as one string: values are one list
	values [][]value // per tuple, per field; a list value holds several
	lists  [][]bool  // per tuple, per field: value was a YAML sequence
	line   int
}

type ruleDef struct {
	name, file   string
	line         int
	cond         string
	condLine     int
	output, desc string
	priority     Priority
	tags         []string
	enabled      bool
	source       string
	exceptions   []exceptionDef
}

type listDef struct {
	items []string
	file  string
	line  int
}

type macroSrc struct {
	cond     string
	file     string
	line     int
	condLine int
}

// loader accumulates definitions across files in order, applying appends
// and overrides as Falco does.
type loader struct {
	rules    []*ruleDef
	ruleByNm map[string]*ruleDef
	macros   map[string]*macroSrc
	lists    map[string]*listDef
	errs     []error
}

func (l *loader) errorf(file string, line int, format string, args ...any) {
	l.errs = append(l.errs, &LoadError{file, line, fmt.Sprintf(format, args...)})
}

func (l *loader) loadFile(f RuleFile) {
	if len(f.Data) > MaxRuleFileSize {
		l.errorf(f.Name, 1, "file larger than %d bytes", MaxRuleFileSize)
		return
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(f.Data, &doc); err != nil {
		line := 1
		var te *yaml.TypeError
		msg := err.Error()
		if !errors.As(err, &te) {
			// yaml.v3 messages read "yaml: line N: ..."; keep N as our line.
			if _, scanErr := fmt.Sscanf(msg, "yaml: line %d:", &line); scanErr == nil {
				msg = strings.TrimSpace(msg[strings.Index(msg[6:], ":")+7:])
			}
		}
		l.errorf(f.Name, line, "invalid YAML: %s", msg)
		return
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.SequenceNode {
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return
		}
		l.errorf(f.Name, root.Line, "rules file must be a YAML sequence of rule, macro and list items")
		return
	}
	for _, it := range root.Content {
		l.loadItem(f.Name, it)
	}
}

// fieldsOf returns a mapping's keys and values.
func fieldsOf(n *yaml.Node) map[string]*yaml.Node {
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		m[n.Content[i].Value] = n.Content[i+1]
	}
	return m
}

func scalar(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	return n.Value, true
}

func scalarList(n *yaml.Node) ([]string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return nil, false
		}
		out = append(out, c.Value)
	}
	return out, true
}

// condLine is the file line where a condition's text starts.
func condStartLine(n *yaml.Node) int {
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + 1
	}
	return n.Line
}

func (l *loader) loadItem(file string, it *yaml.Node) {
	if it.Kind != yaml.MappingNode {
		l.errorf(file, it.Line, "item must be a mapping with a rule, macro, list or required_engine_version key")
		return
	}
	m := fieldsOf(it)
	overrides := map[string]string{}
	if ov, ok := m["override"]; ok {
		if ov.Kind != yaml.MappingNode {
			l.errorf(file, ov.Line, "override must map keys to append or replace")
			return
		}
		for k, v := range fieldsOf(ov) {
			if v.Value != "append" && v.Value != "replace" {
				l.errorf(file, v.Line, "override of %s must be append or replace, not %q", k, v.Value)
				return
			}
			overrides[k] = v.Value
		}
	}
	appendAll := false
	if a, ok := m["append"]; ok {
		if a.Value != "true" && a.Value != "false" {
			l.errorf(file, a.Line, "append must be true or false")
			return
		}
		appendAll = a.Value == "true"
	}
	switch {
	case m["required_engine_version"] != nil, m["required_plugin_versions"] != nil:
		return // accepted; Bulwark's engine is its own
	case m["list"] != nil:
		l.loadList(file, it, m, appendAll, overrides)
	case m["macro"] != nil:
		l.loadMacro(file, it, m, appendAll, overrides)
	case m["rule"] != nil:
		l.loadRule(file, it, m, appendAll, overrides)
	default:
		l.errorf(file, it.Line, "unknown item: expected rule, macro, list or required_engine_version")
	}
}

func (l *loader) loadList(file string, it *yaml.Node, m map[string]*yaml.Node, appendAll bool, ov map[string]string) {
	name, ok := scalar(m["list"])
	if !ok || name == "" {
		l.errorf(file, it.Line, "list name must be a string")
		return
	}
	itemsN := m["items"]
	if itemsN == nil {
		l.errorf(file, it.Line, "list %q has no items", name)
		return
	}
	items, ok := scalarList(itemsN)
	if !ok {
		l.errorf(file, itemsN.Line, "list %q: items must be a sequence of strings", name)
		return
	}
	mode := ov["items"]
	if appendAll {
		mode = "append"
	}
	old := l.lists[name]
	switch mode {
	case "append", "replace":
		if old == nil {
			l.errorf(file, it.Line, "list %q: %s to a list not defined before", name, mode)
			return
		}
		if mode == "append" {
			old.items = append(old.items, items...)
		} else {
			old.items = items
		}
	default:
		l.lists[name] = &listDef{items: items, file: file, line: it.Line}
	}
}

func (l *loader) loadMacro(file string, it *yaml.Node, m map[string]*yaml.Node, appendAll bool, ov map[string]string) {
	name, ok := scalar(m["macro"])
	if !ok || !isIdent(name) {
		l.errorf(file, it.Line, "macro name must be an identifier")
		return
	}
	cn := m["condition"]
	cond, ok := scalar(cn)
	if !ok {
		l.errorf(file, it.Line, "macro %q needs a condition string", name)
		return
	}
	mode := ov["condition"]
	if appendAll {
		mode = "append"
	}
	old := l.macros[name]
	switch mode {
	case "append", "replace":
		if old == nil {
			l.errorf(file, it.Line, "macro %q: %s to a macro not defined before", name, mode)
			return
		}
		if mode == "append" {
			old.cond += " " + cond
		} else {
			old.cond, old.file, old.line, old.condLine = cond, file, it.Line, condStartLine(cn)
		}
	default:
		l.macros[name] = &macroSrc{cond: cond, file: file, line: it.Line, condLine: condStartLine(cn)}
	}
}

func (l *loader) loadRule(file string, it *yaml.Node, m map[string]*yaml.Node, appendAll bool, ov map[string]string) {
	name, ok := scalar(m["rule"])
	if !ok || name == "" {
		l.errorf(file, it.Line, "rule name must be a string")
		return
	}
	nerr := len(l.errs)
	str := func(key string) (string, bool) {
		n := m[key]
		if n == nil {
			return "", false
		}
		s, ok := scalar(n)
		if !ok {
			l.errorf(file, n.Line, "rule %q: %s must be a string", name, key)
		}
		return s, ok
	}
	cond, hasCond := str("condition")
	output, hasOut := str("output")
	desc, hasDesc := str("desc")
	prioS, hasPrio := str("priority")
	source, hasSource := str("source")
	var prio Priority
	if hasPrio {
		if prio, ok = ParsePriority(prioS); !ok {
			l.errorf(file, m["priority"].Line, "rule %q: unknown priority %q (want one of %s)", name, prioS, strings.Join(priorityNames[:], ", "))
		}
	}
	var tags []string
	if n := m["tags"]; n != nil {
		if tags, ok = scalarList(n); !ok {
			l.errorf(file, n.Line, "rule %q: tags must be a sequence of strings", name)
		}
	}
	enabled, hasEnabled := true, false
	if n := m["enabled"]; n != nil {
		hasEnabled = true
		switch n.Value {
		case "true":
		case "false":
			enabled = false
		default:
			l.errorf(file, n.Line, "rule %q: enabled must be true or false", name)
		}
	}
	var excs []exceptionDef
	if n := m["exceptions"]; n != nil {
		excs = l.loadExceptions(file, name, n)
	}
	if len(l.errs) > nerr {
		return
	}
	condLine := it.Line
	if hasCond {
		condLine = condStartLine(m["condition"])
	}

	old := l.ruleByNm[name]
	if appendAll || len(ov) > 0 {
		if old == nil {
			l.errorf(file, it.Line, "rule %q: append/override of a rule not defined before", name)
			return
		}
		mode := func(key string) string {
			if appendAll {
				return "append"
			}
			return ov[key]
		}
		if hasCond {
			switch mode("condition") {
			case "append":
				old.cond += " " + cond
			case "replace":
				old.cond, old.condLine, old.file = cond, condLine, file
			}
		}
		if hasOut {
			switch mode("output") {
			case "append":
				old.output += " " + output
			case "replace":
				old.output = output
			}
		}
		if hasDesc {
			switch mode("desc") {
			case "append":
				old.desc += " " + desc
			case "replace":
				old.desc = desc
			}
		}
		if hasPrio && mode("priority") == "replace" {
			old.priority = prio
		}
		if m["tags"] != nil {
			switch mode("tags") {
			case "append":
				old.tags = append(old.tags, tags...)
			case "replace":
				old.tags = tags
			}
		}
		if m["exceptions"] != nil {
			switch mode("exceptions") {
			case "append":
				old.exceptions = append(old.exceptions, excs...)
			case "replace":
				old.exceptions = excs
			}
		}
		if hasEnabled {
			old.enabled = enabled
		}
		return
	}
	// A rule with only a name and "enabled" toggles an existing rule.
	if old != nil && hasEnabled && !hasCond && !hasOut && !hasDesc && !hasPrio {
		old.enabled = enabled
		return
	}
	var missing []string
	for k, has := range map[string]bool{"condition": hasCond, "output": hasOut, "desc": hasDesc, "priority": hasPrio} {
		if !has {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		sortStrings(missing)
		l.errorf(file, it.Line, "rule %q: missing %s", name, strings.Join(missing, ", "))
		return
	}
	if !hasSource {
		source = "syscall"
	}
	r := &ruleDef{name: name, file: file, line: it.Line, cond: cond, condLine: condLine, output: output, desc: desc,
		priority: prio, tags: tags, enabled: enabled, source: source, exceptions: excs}
	if old != nil { // redefinition replaces, keeping the original order
		*old = *r
		return
	}
	l.rules = append(l.rules, r)
	l.ruleByNm[name] = r
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (l *loader) loadExceptions(file, rule string, n *yaml.Node) []exceptionDef {
	if n.Kind != yaml.SequenceNode {
		l.errorf(file, n.Line, "rule %q: exceptions must be a sequence", rule)
		return nil
	}
	var out []exceptionDef
	for _, en := range n.Content {
		if en.Kind != yaml.MappingNode {
			l.errorf(file, en.Line, "rule %q: exception must be a mapping", rule)
			continue
		}
		m := fieldsOf(en)
		ex := exceptionDef{line: en.Line}
		ex.name, _ = scalar(m["name"])
		fn := m["fields"]
		switch {
		case fn == nil:
			l.errorf(file, en.Line, "rule %q: exception %q has no fields", rule, ex.name)
			continue
		case fn.Kind == yaml.ScalarNode:
			ex.single, ex.fields = true, []string{fn.Value}
		default:
			fs, ok := scalarList(fn)
			if !ok || len(fs) == 0 {
				l.errorf(file, fn.Line, "rule %q: exception %q: fields must be a field or a sequence of fields", rule, ex.name)
				continue
			}
			ex.fields = fs
		}
		if cn := m["comps"]; cn != nil {
			if cn.Kind == yaml.ScalarNode {
				ex.comps = []string{cn.Value}
			} else if cs, ok := scalarList(cn); ok {
				ex.comps = cs
			}
		}
		if len(ex.comps) == 0 {
			def := "="
			if ex.single {
				def = "in"
			}
			for range ex.fields {
				ex.comps = append(ex.comps, def)
			}
		}
		if len(ex.comps) != len(ex.fields) {
			l.errorf(file, en.Line, "rule %q: exception %q: %d comps for %d fields", rule, ex.name, len(ex.comps), len(ex.fields))
			continue
		}
		vn := m["values"]
		if vn == nil || vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
			out = append(out, ex) // no values: never matches, as Falco
			continue
		}
		if vn.Kind != yaml.SequenceNode {
			l.errorf(file, vn.Line, "rule %q: exception %q: values must be a sequence", rule, ex.name)
			continue
		}
		if ex.single {
			vals := make([]value, 0, len(vn.Content))
			for _, v := range vn.Content {
				if v.Kind != yaml.ScalarNode {
					l.errorf(file, v.Line, "rule %q: exception %q: value must be a string", rule, ex.name)
					continue
				}
				vals = append(vals, value{text: v.Value})
			}
			ex.values = [][]value{vals}
			ex.lists = [][]bool{{true}}
			out = append(out, ex)
			continue
		}
		ok := true
		for _, tn := range vn.Content {
			if tn.Kind != yaml.SequenceNode || len(tn.Content) != len(ex.fields) {
				l.errorf(file, tn.Line, "rule %q: exception %q: each value must be a sequence of %d items", rule, ex.name, len(ex.fields))
				ok = false
				break
			}
			tuple := make([]value, 0, len(tn.Content))
			isList := make([]bool, len(tn.Content))
			var extra [][]value
			for i, v := range tn.Content {
				switch v.Kind {
				case yaml.ScalarNode:
					tuple = append(tuple, value{text: v.Value})
					extra = append(extra, nil)
				case yaml.SequenceNode:
					items, good := scalarList(v)
					if !good {
						ok = false
					}
					isList[i] = true
					tuple = append(tuple, value{})
					vs := make([]value, len(items))
					for j, s := range items {
						vs[j] = value{text: s}
					}
					extra = append(extra, vs)
				default:
					ok = false
				}
			}
			if !ok {
				l.errorf(file, tn.Line, "rule %q: exception %q: values must be strings or lists of strings", rule, ex.name)
				break
			}
			// Flatten: a list slot carries its items in extra.
			flat := make([]value, 0, len(tuple))
			for i := range tuple {
				if isList[i] {
					flat = append(flat, value{text: "\x00list"})
					flat = append(flat, extra[i]...)
					flat = append(flat, value{text: "\x00end"})
				} else {
					flat = append(flat, tuple[i])
				}
			}
			ex.values = append(ex.values, flat)
			ex.lists = append(ex.lists, isList)
		}
		if ok {
			out = append(out, ex)
		}
	}
	return out
}

// exceptionNode builds "tuple1 or tuple2 ..." for one exception; nil when
// the exception has no values.
func exceptionNode(ex exceptionDef) node {
	var ors []node
	for _, flat := range ex.values {
		var ands []node
		if ex.single {
			ands = append(ands, &checkNode{field: ex.fields[0], op: ex.comps[0], values: flat, isList: true})
		} else {
			k := 0
			for i, f := range ex.fields {
				cn := &checkNode{field: f, op: ex.comps[i]}
				if k < len(flat) && flat[k].text == "\x00list" {
					k++
					for k < len(flat) && flat[k].text != "\x00end" {
						cn.values = append(cn.values, flat[k])
						k++
					}
					k++
					cn.isList = true
				} else if k < len(flat) {
					cn.values = []value{flat[k]}
					k++
					if cn.op == "in" || cn.op == "intersects" || cn.op == "pmatch" {
						cn.isList = true
					}
				}
				if fi := strings.IndexByte(f, '['); fi >= 0 && strings.HasSuffix(f, "]") {
					cn.field, cn.arg, cn.hasArg = f[:fi], f[fi+1:len(f)-1], true
				}
				ands = append(ands, cn)
			}
		}
		if len(ands) == 1 {
			ors = append(ors, ands[0])
		} else {
			ors = append(ors, &andNode{terms: ands})
		}
	}
	switch len(ors) {
	case 0:
		return nil
	case 1:
		return ors[0]
	}
	return &orNode{terms: ors}
}
