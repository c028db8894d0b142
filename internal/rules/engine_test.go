package rules

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite FIELDS.md")

// one compiles a single rule with the given condition.
func one(t testing.TB, cond string, src string) (*Engine, error) {
	t.Helper()
	y := "- macro: is_exec\n  condition: evt.type in (execve, execveat)\n" +
		"- list: shells\n  items: [sh, bash]\n- list: more_shells\n  items: [shells, zsh]\n" +
		"- rule: r\n  desc: d\n  output: o %proc.name\n  priority: WARNING\n  source: " + src + "\n  condition: " + quoteYAML(cond) + "\n"
	if src == "k8s_audit" {
		y = strings.Replace(y, "o %proc.name", "o %ka.verb", 1)
	}
	return Compile([]RuleFile{{Name: "t.yaml", Data: []byte(y)}})
}

func quoteYAML(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestOperatorsAndFields(t *testing.T) {
	base := func() *Event {
		e := exec("bash", "-c ls /tmp", withParent("python3"))
		e.Proc.Ancestors = append(e.Proc.Ancestors, Ancestor{Name: "init"})
		e.FD = FD{Name: "/etc/ssl/certs/ca.pem", TypeChar: 'f'}
		e.User.UID = 1000
		e.Proc.TTY = 34816
		return e
	}
	net := func() *Event {
		e := connectEv("curl", "203.0.113.9", 443)
		e.FD.RIP = netip.MustParseAddr("::ffff:203.0.113.9")
		return e
	}
	cases := []struct {
		cond string
		ev   func() *Event
		want bool
	}{
		{"proc.name = bash", base, true},
		{"proc.name == bash", base, true},
		{"proc.name = sh", base, false},
		{"proc.name != sh", base, true},
		{"proc.name != bash", base, false},
		{"proc.name in (sh, bash)", base, true},
		{"proc.name in (shells)", base, true},
		{"proc.name in (more_shells)", base, true},
		{"proc.name in ('shells')", base, false},
		{"proc.name in (zsh, ksh)", base, false},
		{"proc.name intersects (bash)", base, true},
		{"proc.cmdline contains 'ls /tmp'", base, true},
		{"proc.cmdline contains /var", base, false},
		{"proc.cmdline icontains 'LS /TMP'", base, true},
		{"proc.cmdline icontains 'LS /VAR'", base, false},
		{"proc.args startswith -c", base, true},
		{"proc.args startswith ls", base, false},
		{"proc.args endswith /tmp", base, true},
		{"proc.args endswith ls", base, false},
		{"fd.name glob '/etc/*/*.pem'", base, true},
		{"fd.name glob '/etc/*.pem'", base, true}, // '*' crosses '/', as Falco's glob
		{"fd.name glob '/etc/ss?/[a-c]*'", base, true},
		{"fd.name glob '/etc/ss?/[!a-c]*'", base, false},
		{"fd.name pmatch (/etc/ssl, /opt)", base, true},
		{"fd.name pmatch (/etc/ss)", base, false},
		{"fd.directory = /etc/ssl/certs", base, true},
		{"fd.filename = ca.pem", base, true},
		{"fd.typechar = f", base, true},
		{"fd.sip exists", base, false},
		{"fd.name exists", base, true},
		{"proc.pname = python3", base, true},
		{"proc.aname[1] = python3", base, true},
		{"proc.aname[0] = bash", base, true},
		{"proc.aname[3] = init", base, true},
		{"proc.aname[4] exists", base, false},
		{"proc.aname = init", base, true},
		{"proc.aname in (zsh, containerd-shim)", base, false}, // in: every ancestor in the set
		{"proc.aname intersects (zsh, containerd-shim)", base, true},
		{"proc.aname != python3", base, false},
		{"proc.aname startswith cont", base, true},
		{"proc.pcmdline = python3", base, true},
		{"user.uid = 1000", base, true},
		{"user.uid > 999 and user.uid < 1001 and user.uid >= 1000 and user.uid <= 1000", base, true},
		{"user.uid < 1000", base, false},
		{"user.uid in (0, 1000)", base, true},
		{"user.loginuid = -1", base, true},
		{"proc.tty != 0", base, true},
		{"group.gid = 0", base, true},
		{"user.name = root", base, true},
		{"proc.pid = 4242 and proc.ppid = 4000", base, true},
		{"evt.time > 0", base, true},
		{"evt.dir = <", base, true},
		{"evt.dir=>", base, false},
		{"evt.type = execve", base, true},
		{"evt.type != execve", base, false},
		{"evt.type in (open, execve)", base, true},
		{"is_exec and not proc.name = sh", base, true},
		{"not (proc.name = bash or proc.name = sh)", base, false},
		{"proc.name = sh or proc.name = bash and user.uid = 1000", base, true},
		{"(proc.name = sh or proc.name = bash) and user.uid = 0", base, false},
		{"proc.exe = bash and proc.exepath = /usr/bin/bash and proc.cwd = /app", base, true},
		{"proc.is_exe_upper_layer = false and proc.is_exe_from_memfd = false", base, true},
		{"container.id = 3f2a1b0c9d8e and container.name = web and container.image.repository = docker.io/library/nginx", base, true},
		{"container.image endswith ':1.25' and container.privileged = false", base, true},
		{"k8s.ns.name = default and k8s.pod.name = web-0 and k8s.pod.labels intersects ('app:web')", base, true},
		{"k8s.pod.labels = 'app:db'", base, false},
		{"fd.rip = 203.0.113.9", net, true},
		{"fd.rip = 203.0.113.10", net, false},
		{"fd.rip in (198.51.100.0/24, 203.0.113.0/24)", net, true},
		{"fd.rip != 203.0.113.9", net, false},
		{"fd.sip = 10.1.2.3", net, true},
		{"fd.net = 10.0.0.0/8", net, true},
		{"fd.rnet = 10.0.0.0/8", net, false},
		{"fd.snet = 10.0.0.0/8", net, true},
		{"fd.rnet != 10.0.0.0/8", net, true},
		{"fd.rport = 443 and fd.sport = 40000 and fd.l4proto = tcp and fd.typechar = 4", net, true},
		{"fd.directory exists", net, false},
		{"evt.is_open_write = true", func() *Event { return fileEv(EventOpenat, "x", "/a", OpenRDWR) }, true},
		{"evt.is_open_write = true", func() *Event { return fileEv(EventOpenat, "x", "/a", 0) }, false},
		{"evt.is_open_read = true", func() *Event { return fileEv(EventOpenat, "x", "/a", OpenRDWR) }, true},
		{"evt.arg.flags = 2", func() *Event { return fileEv(EventOpenat, "x", "/a", OpenRDWR) }, true},
		{"evt.arg.sig = 9 and evt.arg.pid = 77", func() *Event {
			e := exec("kill", "")
			e.Type, e.Args.Signal, e.Args.PID = EventKill, 9, 77
			return e
		}, true},
		{"evt.arg.uid = 0", func() *Event { e := exec("x", ""); e.Type = EventSetuid; return e }, true},
		{"evt.arg.mode = 0755 and evt.arg.name = /x", func() *Event {
			e := exec("chmod", "")
			e.Type, e.Args.Mode, e.Args.Name = EventFchmodat, 0o755, "/x"
			return e
		}, true},
	}
	for _, c := range cases {
		eng, err := one(t, c.cond, "syscall")
		if err != nil {
			t.Errorf("%s: %v", c.cond, err)
			continue
		}
		if len(eng.Skipped()) > 0 {
			t.Errorf("%s: skipped %v", c.cond, eng.Skipped())
			continue
		}
		r := eng.Rules()[0]
		if got := r.pred(c.ev()); got != c.want {
			t.Errorf("%s = %v, want %v", c.cond, got, c.want)
		}
	}
}

func TestAuditFields(t *testing.T) {
	js := `{"kind":"Event","verb":"create","requestURI":"/api/v1/namespaces/ns/pods","userAgent":"kubectl/1.30",
"stage":"ResponseComplete","user":{"username":"alice","groups":["dev","system:authenticated"]},"impersonatedUser":{"username":"bob"},
"sourceIPs":["192.0.2.1","10.0.0.1"],"objectRef":{"resource":"pods","subresource":"","namespace":"ns","name":"p","apiGroup":""},
"responseStatus":{"code":201},"annotations":{"authorization.k8s.io/decision":"allow"},
"requestObject":{"kind":"Pod","spec":{"hostNetwork":true,"containers":[{"image":"a:1","securityContext":{"privileged":true,"capabilities":{"add":["SYS_ADMIN"]}}},{"image":"b:2"}],
"volumes":[{"hostPath":{"path":"/etc"}},{"emptyDir":{}}]}}}`
	cases := []struct {
		cond string
		want bool
	}{
		{"ka.verb = create and ka.uri startswith /api/v1 and ka.useragent contains kubectl and ka.stage = ResponseComplete", true},
		{"ka.user.name = alice and ka.user.groups intersects (dev) and ka.impuser.name = bob", true},
		{"ka.user.groups in (dev, system:authenticated)", true},
		{"ka.user.groups in (dev)", false},
		{"ka.sourceips intersects (10.0.0.1)", true},
		{"ka.target.resource = pods and ka.target.namespace = ns and ka.target.name = p", true},
		{"ka.target.subresource exists", false},
		{"ka.response.code = 201 and ka.response.code < 400", true},
		{"ka.auth.decision = allow", true},
		{"ka.req.pod.containers.privileged intersects (true)", true},
		{"ka.req.pod.containers.privileged in (true)", false},
		{"ka.req.pod.containers.image = b:2", true},
		{"ka.req.pod.containers.add_capabilities intersects (SYS_ADMIN)", true},
		{"ka.req.pod.volumes.hostpath pmatch (/etc)", true},
		{"ka.req.pod.host_network = true and ka.req.pod.host_pid = false", true},
		{"ka.req.binding.role exists", false},
	}
	e := auditEv(t, js)
	for _, c := range cases {
		eng, err := one(t, c.cond, "k8s_audit")
		if err != nil || len(eng.Skipped()) > 0 {
			t.Errorf("%s: %v %v", c.cond, err, eng)
			continue
		}
		if got := matchNames(eng.Evaluate(e, nil)); (len(got) == 1) != c.want {
			t.Errorf("%s = %v, want %v", c.cond, got, c.want)
		}
	}
}

func TestMalformed(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // substring of the error, which names file:line
	}{
		{"bad yaml", "- rule: x\n\tdesc: d\n", "bad.yaml:2: invalid YAML"},
		{"not a sequence", "rule: x\n", "bad.yaml:1: rules file must be a YAML sequence"},
		{"bad condition", "- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: proc.name = \n", `bad.yaml:5: rule "x": condition: col 12: missing value after "="`},
		{"bad condition block", "- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: |\n    proc.name = a and\n    (proc.name = b\n", `bad.yaml:7: rule "x": condition:`},
		{"unknown macro", "- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: spawned and proc.name = a\n", `bad.yaml:5: rule "x": condition: col 1: undefined macro "spawned"`},
		{"bad priority", "- rule: x\n  desc: d\n  output: o\n  priority: SEVERE\n  condition: proc.name = a\n", `bad.yaml:4: rule "x": unknown priority "SEVERE"`},
		{"missing keys", "- rule: x\n  condition: proc.name = a\n", `bad.yaml:1: rule "x": missing desc, output, priority`},
		{"append to nothing", "- list: l\n  items: [a]\n  append: true\n", `bad.yaml:1: list "l": append to a list not defined before`},
		{"bad value type", "- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: user.uid = root\n", `value "root" is not a int`},
		{"bad macro", "- macro: m\n  condition: (a\n", `bad.yaml:2: macro "m": condition:`},
		{"recursive macro", "- macro: m\n  condition: m\n- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: m\n", "refers to itself"},
		{"bad glob", "- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: fd.name glob '/a[b'\n", "malformed glob"},
		{"unknown item", "- foo: bar\n", "bad.yaml:1: unknown item"},
		{"bad ip", "- rule: x\n  desc: d\n  output: o\n  priority: INFO\n  condition: fd.rip = 1.2.3\n", "not an IP address"},
	}
	for _, c := range cases {
		_, err := Compile([]RuleFile{{Name: "bad.yaml", Data: []byte(c.yaml)}})
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
		}
	}
}

func TestUnsupportedRulesSkipped(t *testing.T) {
	y := `
- macro: uses_unknown
  condition: proc.vpgid = 1
- macro: never_used_unknown
  condition: some.field = 1
- rule: unknown field
  desc: d
  output: o
  priority: INFO
  condition: evt.type = execve and uses_unknown
- rule: unknown output field
  desc: d
  output: "%container.info"
  priority: INFO
  condition: evt.type = execve
- rule: regex operator
  desc: d
  output: o
  priority: INFO
  condition: evt.type = execve and proc.name regex 'a.*'
- rule: audit field in syscall rule
  desc: d
  output: o
  priority: INFO
  condition: evt.type = execve and ka.verb = get
- rule: plugin source
  desc: d
  output: o
  priority: INFO
  source: aws_cloudtrail
  condition: ct.name = x
- rule: no event type we produce
  desc: d
  output: o
  priority: INFO
  condition: evt.type = pread
- rule: fine
  desc: d
  output: o
  priority: INFO
  condition: evt.type = execve
`
	eng, err := Compile([]RuleFile{{Name: "u.yaml", Data: []byte(y)}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range eng.Skipped() {
		got = append(got, s.String())
	}
	want := []string{
		`u.yaml:6: rule "unknown field" skipped: macro uses_unknown (u.yaml:2): field "proc.vpgid" is not one Bulwark can fill (see FIELDS.md)`,
		`u.yaml:11: rule "unknown output field" skipped: output: field "container.info" is not one Bulwark can fill (see FIELDS.md)`,
		`u.yaml:16: rule "regex operator" skipped: operator "regex" is not supported`,
		`u.yaml:21: rule "audit field in syscall rule" skipped: field "ka.verb" belongs to source k8s_audit, not syscall`,
		`u.yaml:26: rule "plugin source" skipped: source "aws_cloudtrail" is not one Bulwark evaluates`,
		`u.yaml:32: rule "no event type we produce" skipped: its condition matches no event type Bulwark reports`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("skipped (-want +got):\n%s", d)
	}
	if n := len(eng.Rules()); n != 1 || eng.Rules()[0].Name != "fine" {
		t.Errorf("rules: %v", eng.Rules())
	}
	if !errors.Is(&unsupportedError{"x"}, ErrUnsupported) {
		t.Error("unsupportedError is not ErrUnsupported")
	}
}

func TestAppendOverrideExceptions(t *testing.T) {
	base := `
- list: bins
  items: [a]
- macro: m
  condition: proc.name in (bins)
- rule: r
  desc: d
  output: o
  priority: WARNING
  condition: evt.type = execve and m
  tags: [t1]
- rule: r2
  desc: d
  output: o
  priority: WARNING
  condition: evt.type = execve and proc.name = zz
`
	user := `
- list: bins
  items: [b]
  append: true
- list: more
  items: [c]
- list: more
  items: [bins, d]
  override:
    items: replace
- macro: m
  condition: or proc.name in (more)
  append: true
- rule: r
  exceptions:
    - name: known
      fields: [proc.name, proc.cwd]
      comps: [=, startswith]
      values:
        - [b, /safe]
    - name: listed
      fields: proc.pname
      values: [trusted, alsotrusted]
  append: true
- rule: r
  priority: ERROR
  tags: [t2]
  override:
    priority: replace
    tags: append
- rule: r2
  enabled: false
`
	eng, err := Compile([]RuleFile{{Name: "base.yaml", Data: []byte(base)}, {Name: "user.yaml", Data: []byte(user)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(eng.Rules()) != 1 {
		t.Fatalf("rules %d, want 1 (r2 disabled)", len(eng.Rules()))
	}
	r := eng.Rules()[0]
	if r.Priority != PriorityError || !cmp.Equal(r.Tags, []string{"t1", "t2"}) {
		t.Errorf("override: priority %v tags %v", r.Priority, r.Tags)
	}
	cases := []struct {
		name, cwd, parent string
		want              bool
	}{
		{"a", "/", "x", true},
		{"b", "/", "x", true},        // appended list
		{"d", "/", "x", true},        // more = bins + d after override
		{"c", "/", "x", false},       // replaced away
		{"b", "/safe/x", "x", false}, // exception tuple
		{"a", "/safe/x", "x", true},  // tuple needs both fields
		{"a", "/", "trusted", false}, // single-field exception
		{"zz", "/", "x", false},
	}
	for _, c := range cases {
		e := exec(c.name, "", withParent(c.parent))
		e.Proc.CWD = c.cwd
		if got := len(eng.Evaluate(e, nil)) == 1; got != c.want {
			t.Errorf("%+v: matched %v", c, got)
		}
	}
}

func TestTypeIndex(t *testing.T) {
	eng := mustDefaults(t)
	for _, r := range eng.Rules() {
		if r.Source == SourceSyscall && r.types == allTypes() {
			t.Errorf("rule %q runs on every event type: its condition should name evt.type", r.Name)
		}
	}
	// An open event must not run exec-only rules.
	for _, r := range eng.byType[EventOpenat] {
		if r.Name == "Crypto miner process" {
			t.Error("exec rule indexed under openat")
		}
	}
}

func TestFieldsDoc(t *testing.T) {
	got := FieldsMarkdown()
	if *update {
		if err := os.WriteFile("FIELDS.md", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("FIELDS.md")
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("FIELDS.md is stale; run go test -run TestFieldsDoc -update (-file +table):\n%s", d)
	}
}

func TestAuditDecodeHostile(t *testing.T) {
	var a AuditEvent
	for _, in := range []string{"", "{", "[]", `{"requestObject":[1]}`, `{"responseStatus":{"code":"x"}}`} {
		if err := DecodeAuditEvent([]byte(in), &a); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	big := make([]byte, MaxAuditEventSize+1)
	if err := DecodeAuditEvent(big, &a); !errors.Is(err, ErrAuditTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	list, err := DecodeAuditEventList([]byte(`{"kind":"EventList","items":[` + simpleAudit("get", "pods", "", "a", "b", "u") + `]}`))
	if err != nil || len(list) != 1 || list[0].Resource != "pods" {
		t.Errorf("list: %v %v", list, err)
	}
	if _, err := DecodeAuditEventList([]byte(`{"kind":"PodList","items":[]}`)); err == nil {
		t.Error("wrong kind accepted")
	}
}
