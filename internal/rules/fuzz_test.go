package rules

import (
	"testing"
)

func FuzzCompileCondition(f *testing.F) {
	for _, s := range []string{
		"proc.name = bash", "evt.type in (execve, execveat) and evt.dir=<", "not (a or b)", "proc.aname[2] startswith sh",
		"fd.name glob '/etc/[a-z]*'", "fd.net = 10.0.0.0/8", "proc.cmdline contains \"x\\\"y\"", "((((", "fd.name pmatch (/a, /b)",
		"user.uid >= 0 and x.y exists", "proc.name in ()", "evt.dir = >", "'", "a.b[",
	} {
		f.Add(s)
	}
	fields := newFieldIndex()
	f.Fuzz(func(t *testing.T, cond string) {
		ast, err := parseCondition(cond)
		if err != nil {
			return
		}
		c := &compiler{fields: fields, macros: map[string]*macroDef{}, lists: map[string][]string{"l": {"a", "b"}}, visiting: map[string]bool{}}
		p, _, err := c.compile(ast)
		if err != nil {
			return
		}
		p(exec("bash", "-c x", withParent("sh")))
		p(&Event{})
	})
}

func FuzzLoadRules(f *testing.F) {
	files, err := DefaultRuleFiles()
	if err != nil {
		f.Fatal(err)
	}
	for _, rf := range files {
		f.Add(rf.Data)
	}
	f.Add([]byte("- rule: r\n  desc: d\n  output: '%proc.name %ka.verb %'\n  priority: info\n  condition: evt.type=execve\n  exceptions:\n  - name: e\n    fields: [proc.name]\n    values: [[a]]\n"))
	f.Add([]byte("- list: a\n  items: [b]\n- list: b\n  items: [a]\n- rule: r\n  desc: d\n  output: o\n  priority: info\n  condition: proc.name in (a)\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		eng, err := Compile([]RuleFile{{Name: "f.yaml", Data: data}})
		if err != nil {
			return
		}
		ev := exec("bash", "-c x", withParent("sh"))
		for _, m := range eng.Evaluate(ev, nil) {
			m.Rule.FormatOutput(ev)
		}
		a := &Event{Audit: &AuditEvent{Verb: "get"}}
		for _, m := range eng.Evaluate(a, nil) {
			m.Rule.FormatOutput(a)
		}
	})
}
