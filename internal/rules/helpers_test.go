package rules

import (
	"net/netip"
	"testing"
)

func mustDefaults(t testing.TB) *Engine {
	t.Helper()
	files, err := DefaultRuleFiles()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// exec builds a process-start event in a container.
func exec(name, args string, mod ...func(*Event)) *Event {
	e := &Event{Type: EventExecve, Time: 1700000000000000000,
		Proc: Process{Name: name, Exe: name, ExePath: "/usr/bin/" + name, Args: args, PID: 4242, PPID: 4000,
			CWD: "/app", Ancestors: []Ancestor{{Name: "containerd-shim", Cmdline: "containerd-shim -namespace k8s.io"}}},
		User:      User{UID: 0, Name: "root", LoginUID: -1},
		Container: Container{ID: "3f2a1b0c9d8e", Name: "web", Image: "docker.io/library/nginx:1.25", ImageRepository: "docker.io/library/nginx"},
		K8s:       K8s{Namespace: "default", PodName: "web-0", PodLabels: []string{"app:web"}},
	}
	if args == "" {
		e.Proc.Cmdline = name
	} else {
		e.Proc.Cmdline = name + " " + args
	}
	for _, m := range mod {
		m(e)
	}
	return e
}

func withParent(name string) func(*Event) {
	return func(e *Event) {
		e.Proc.Ancestors = append([]Ancestor{{Name: name, Cmdline: name}}, e.Proc.Ancestors...)
	}
}

func onHost(e *Event) { e.Container = Container{ID: "host"}; e.K8s = K8s{} }

func fileEv(t EventType, name, path string, flags int64) *Event {
	e := exec(name, "")
	e.Type = t
	e.FD = FD{Name: path, TypeChar: 'f'}
	e.Args.Flags = flags
	return e
}

func connectEv(name, rip string, rport int64) *Event {
	e := exec(name, "")
	e.Type = EventConnect
	e.FD = FD{TypeChar: '4', SIP: netip.MustParseAddr("10.1.2.3"), SPort: 40000, RIP: netip.MustParseAddr(rip), RPort: rport, L4Proto: "tcp",
		Name: "10.1.2.3:40000->" + rip}
	return e
}

func auditEv(t testing.TB, js string) *Event {
	t.Helper()
	var a AuditEvent
	if err := DecodeAuditEvent([]byte(js), &a); err != nil {
		t.Fatal(err)
	}
	return &Event{Audit: &a}
}

func matchNames(ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Rule.Name)
	}
	return out
}
