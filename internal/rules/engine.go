package rules

import (
	"errors"
	"fmt"
	"strings"
)

// Rule is a compiled, enabled rule.
type Rule struct {
	Name     string
	Desc     string
	Output   string // the template text
	Priority Priority
	Tags     []string
	Source   Source
	File     string
	Line     int

	pred  pred
	types typeSet
	out   template
}

// AppendOutput renders the rule's output for ev onto b; fields the event
// lacks render as <NA>.
func (r *Rule) AppendOutput(b []byte, ev *Event) []byte { return r.out.appendTo(b, ev) }

// FormatOutput renders the rule's output for ev.
func (r *Rule) FormatOutput(ev *Event) string { return string(r.AppendOutput(nil, ev)) }

// Match is one rule that matched an event.
type Match struct {
	Rule *Rule
}

// Engine evaluates a compiled rule set. It is immutable after Compile and
// safe for concurrent use.
type Engine struct {
	rules   []*Rule
	byType  [numEventTypes][]*Rule
	audit   []*Rule
	skipped []Skipped
}

// Compile loads the files in order (later files append to or override
// earlier ones, as Falco) and compiles every enabled rule. Malformed input
// (YAML, condition syntax, undefined macro, bad priority, an append to
// nothing) is an error naming file:line; every problem found is joined in
// it. Rules that use a field, operator or source Bulwark cannot evaluate are
// not errors: they are listed by Engine.Skipped and never run.
func Compile(files []RuleFile) (*Engine, error) {
	l := &loader{ruleByNm: map[string]*ruleDef{}, macros: map[string]*macroSrc{}, lists: map[string]*listDef{}}
	for _, f := range files {
		l.loadFile(f)
	}
	lists := make(map[string][]string, len(l.lists))
	for name := range l.lists {
		lists[name] = expandList(l.lists, name, 0)
	}
	macros := make(map[string]*macroDef, len(l.macros))
	for name, m := range l.macros {
		ast, err := parseCondition(m.cond)
		if err != nil {
			l.errs = append(l.errs, condError(m.file, m.condLine, m.cond, "macro "+quote(name), err))
			continue
		}
		macros[name] = &macroDef{name: name, ast: ast, file: m.file, line: m.line}
	}
	fields := newFieldIndex()
	e := &Engine{}
	for _, rd := range l.rules {
		if !rd.enabled {
			continue
		}
		var src Source
		switch rd.source {
		case "syscall", "":
			src = SourceSyscall
		case "k8s_audit":
			src = SourceK8sAudit
		default:
			e.skipped = append(e.skipped, Skipped{rd.file, rd.line, rd.name, fmt.Sprintf("source %q is not one Bulwark evaluates", rd.source)})
			continue
		}
		c := &compiler{fields: fields, macros: macros, lists: lists, source: src, visiting: map[string]bool{}}
		r, err := c.rule(rd)
		if err != nil {
			var ue *unsupportedError
			if errors.As(err, &ue) {
				e.skipped = append(e.skipped, Skipped{rd.file, rd.line, rd.name, ue.msg})
				continue
			}
			l.errs = append(l.errs, condError(rd.file, rd.condLine, rd.cond, "rule "+quote(rd.name), err))
			continue
		}
		r.Source = src
		if src == SourceK8sAudit {
			e.audit = append(e.audit, r)
		} else {
			if r.types.empty() {
				e.skipped = append(e.skipped, Skipped{rd.file, rd.line, rd.name, "its condition matches no event type Bulwark reports"})
				continue
			}
			for t := EventType(1); t < numEventTypes; t++ {
				if r.types.has(t) {
					e.byType[t] = append(e.byType[t], r)
				}
			}
		}
		e.rules = append(e.rules, r)
	}
	if len(l.errs) > 0 {
		return nil, fmt.Errorf("compile rules: %w", errors.Join(l.errs...))
	}
	return e, nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// condError places a condition error on its file line.
func condError(file string, line int, cond, what string, err error) error {
	var se *SyntaxError
	if errors.As(err, &se) && se.Pos <= len(cond) {
		line += strings.Count(strings.TrimRight(cond[:se.Pos], "\n"), "\n")
		return &LoadError{file, line, fmt.Sprintf("%s: condition: %s", what, err)}
	}
	return &LoadError{file, line, fmt.Sprintf("%s: %s", what, err)}
}

func expandList(lists map[string]*listDef, name string, depth int) []string {
	if depth > 32 {
		return nil
	}
	var out []string
	for _, it := range lists[name].items {
		if _, ok := lists[it]; ok && it != name {
			out = append(out, expandList(lists, it, depth+1)...)
			continue
		}
		out = append(out, it)
	}
	return out
}

func (c *compiler) rule(rd *ruleDef) (*Rule, error) {
	ast, err := parseCondition(rd.cond)
	if err != nil {
		return nil, err
	}
	var excs []node
	for _, ex := range rd.exceptions {
		if n := exceptionNode(ex); n != nil {
			excs = append(excs, n)
		}
	}
	p, ts, err := c.compile(ast)
	if err != nil {
		return nil, err
	}
	if len(excs) > 0 {
		var en node = &orNode{terms: excs}
		if len(excs) == 1 {
			en = excs[0]
		}
		xp, _, err := c.compile(en)
		if err != nil {
			var ue *unsupportedError
			if errors.As(err, &ue) {
				return nil, &unsupportedError{"exception: " + ue.msg}
			}
			return nil, fmt.Errorf("exception: %w", err)
		}
		base := p
		p = func(e *Event) bool { return base(e) && !xp(e) }
	}
	out, err := c.compileTemplate(rd.output)
	if err != nil {
		var ue *unsupportedError
		if errors.As(err, &ue) {
			return nil, &unsupportedError{"output: " + ue.msg}
		}
		return nil, fmt.Errorf("output: %w", err)
	}
	return &Rule{Name: rd.name, Desc: rd.desc, Output: rd.output, Priority: rd.priority, Tags: rd.tags,
		File: rd.file, Line: rd.line, pred: p, types: ts, out: out}, nil
}

// Rules returns the compiled, enabled rules in load order.
func (e *Engine) Rules() []*Rule { return e.rules }

// Skipped returns the rules that were loaded but will not run, and why.
func (e *Engine) Skipped() []Skipped { return e.skipped }

// Evaluate appends to dst every rule matching ev and returns it. Only the
// rules for ev's source and event type run; a non-matching event costs no
// allocation.
func (e *Engine) Evaluate(ev *Event, dst []Match) []Match {
	var rs []*Rule
	if ev.Audit != nil {
		rs = e.audit
	} else if ev.Type < numEventTypes {
		rs = e.byType[ev.Type]
	}
	for _, r := range rs {
		if r.pred(ev) {
			dst = append(dst, Match{Rule: r})
		}
	}
	return dst
}
