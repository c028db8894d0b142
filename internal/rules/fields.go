package rules

import (
	"net/netip"
	"strconv"
	"strings"
)

// Source is the event source a rule applies to, as Falco's "source" key.
type Source uint8

// The two sources Bulwark evaluates.
const (
	SourceSyscall Source = iota
	SourceK8sAudit
)

func (s Source) String() string {
	if s == SourceK8sAudit {
		return "k8s_audit"
	}
	return "syscall"
}

// kind is the type of a field's value; it decides which operators apply.
type kind uint8

const (
	kindString  kind = iota
	kindInt          // int64
	kindBool         // true/false
	kindIP           // netip.Addr
	kindNet          // fd.net: matched against CIDRs
	kindStrings      // several values: a comparison holds when it holds for any
	kindType         // evt.type
)

var kindNames = [...]string{"string", "int", "bool", "ip", "ipnet", "list", "evttype"}

// argKind says what may follow a field name in brackets.
type argKind uint8

const (
	argNone  argKind = iota
	argIndex         // proc.aname[N]: optional integer
)

// field describes one field Bulwark can fill: its accessor is resolved when a
// condition is compiled, so evaluating a condition never looks a name up.
type field struct {
	name   string
	source Source
	kind   kind
	arg    argKind
	desc   string
	str    func(*Event) (string, bool)
	num    func(*Event) (int64, bool)
	strs   func(*Event) ([]string, bool)
	ip     func(*Event) (netip.Addr, bool)
	ips    func(*Event) (netip.Addr, netip.Addr, bool) // kindNet: both ends
	idx    func(*Event, int) (string, bool)            // argIndex with an index
}

func nonEmpty(s string) (string, bool) { return s, s != "" }

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func audit(f func(a *AuditEvent) (string, bool)) func(*Event) (string, bool) {
	return func(e *Event) (string, bool) {
		if e.Audit == nil {
			return "", false
		}
		return f(e.Audit)
	}
}

func auditList(f func(a *AuditEvent) []string) func(*Event) ([]string, bool) {
	return func(e *Event) ([]string, bool) {
		if e.Audit == nil {
			return nil, false
		}
		v := f(e.Audit)
		return v, v != nil
	}
}

func isFile(e *Event) bool { return e.FD.TypeChar == 'f' || e.FD.TypeChar == 'd' }

// fieldTable returns every field Bulwark can fill. It is a function, not a
// package variable, so there is no package-level mutable state; the engine
// builds its index from it once per Compile.
func fieldTable() []field {
	return []field{
		// evt.*
		{name: "evt.type", kind: kindType, desc: "System call name (execve, openat, connect, ...); rules are indexed by it.",
			str: func(e *Event) (string, bool) { return e.Type.String(), e.Type != EventUnknown }},
		{name: "evt.time", kind: kindInt, desc: "Event time, nanoseconds since the Unix epoch.",
			num: func(e *Event) (int64, bool) { return e.Time, true }},
		{name: "evt.dir", kind: kindString, desc: "`<` for a completed call (what Bulwark reports), `>` for an entry.",
			str: func(e *Event) (string, bool) {
				if e.Enter {
					return ">", true
				}
				return "<", true
			}},
		{name: "evt.is_open_write", kind: kindBool, desc: "An open/openat/openat2/creat with O_WRONLY, O_RDWR, O_CREAT or O_TRUNC.",
			num: func(e *Event) (int64, bool) {
				return b2i(isOpen(e.Type) && (e.Type == EventCreat || e.Args.Flags&(OpenWrite|OpenRDWR|OpenCreate|OpenTrunc) != 0)), true
			}},
		{name: "evt.is_open_read", kind: kindBool, desc: "An open/openat/openat2 with read access (O_RDONLY or O_RDWR).",
			num: func(e *Event) (int64, bool) {
				return b2i(isOpen(e.Type) && e.Type != EventCreat && e.Args.Flags&OpenWrite == 0), true
			}},
		{name: "evt.arg.flags", kind: kindInt, desc: "Numeric flags argument (open flags, clone/unshare namespace flags).",
			num: func(e *Event) (int64, bool) { return e.Args.Flags, true }},
		{name: "evt.arg.mode", kind: kindInt, desc: "Mode argument of chmod/fchmod/fchmodat.",
			num: func(e *Event) (int64, bool) { return e.Args.Mode, true }},
		{name: "evt.arg.sig", kind: kindInt, desc: "Signal number of kill/tkill/tgkill.",
			num: func(e *Event) (int64, bool) {
				return e.Args.Signal, e.Type == EventKill || e.Type == EventTkill || e.Type == EventTgkill
			}},
		{name: "evt.arg.pid", kind: kindInt, desc: "Target pid of kill/ptrace.",
			num: func(e *Event) (int64, bool) { return e.Args.PID, e.Args.PID != 0 }},
		{name: "evt.arg.uid", kind: kindInt, desc: "New uid of setuid/setresuid.",
			num: func(e *Event) (int64, bool) { return e.Args.UID, e.Type == EventSetuid || e.Type == EventSetresuid }},
		{name: "evt.arg.name", kind: kindString, desc: "Name argument: kernel module name, path of rename/unlink/utimensat, target of symlink.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Args.Name) }},

		// proc.*
		{name: "proc.name", kind: kindString, desc: "Process name (executable basename, as comm).",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Proc.Name) }},
		{name: "proc.exe", kind: kindString, desc: "argv[0].",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Proc.Exe) }},
		{name: "proc.exepath", kind: kindString, desc: "Full path of the executable.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Proc.ExePath) }},
		{name: "proc.cmdline", kind: kindString, desc: "Name and arguments joined by spaces.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Proc.Cmdline) }},
		{name: "proc.args", kind: kindString, desc: "Arguments (argv[1:]) joined by spaces.",
			str: func(e *Event) (string, bool) { return e.Proc.Args, e.Proc.Name != "" }},
		{name: "proc.pid", kind: kindInt, desc: "Process id (in the host pid namespace).",
			num: func(e *Event) (int64, bool) { return e.Proc.PID, e.Proc.PID != 0 }},
		{name: "proc.ppid", kind: kindInt, desc: "Parent process id.",
			num: func(e *Event) (int64, bool) { return e.Proc.PPID, e.Proc.PPID != 0 }},
		{name: "proc.pname", kind: kindString, desc: "Parent process name.",
			str: func(e *Event) (string, bool) { return ancestorName(e, 1) }},
		{name: "proc.pcmdline", kind: kindString, desc: "Parent command line.",
			str: func(e *Event) (string, bool) {
				if len(e.Proc.Ancestors) == 0 {
					return "", false
				}
				return nonEmpty(e.Proc.Ancestors[0].Cmdline)
			}},
		{name: "proc.aname", kind: kindStrings, arg: argIndex,
			desc: "`proc.aname[N]`: name of the Nth ancestor (0 the process, 1 the parent, ...). Without an index: any ancestor (parent and up) — a comparison holds when it holds for one of them.",
			strs: func(e *Event) ([]string, bool) { return nil, false }, // replaced by compile: ancestors need a walk
			idx:  ancestorName},
		{name: "proc.cwd", kind: kindString, desc: "Current working directory.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Proc.CWD) }},
		{name: "proc.tty", kind: kindInt, desc: "Controlling terminal (0 when none).",
			num: func(e *Event) (int64, bool) { return e.Proc.TTY, true }},
		{name: "proc.is_exe_upper_layer", kind: kindBool, desc: "The executable is in the container's writable layer (not in the image): drift.",
			num: func(e *Event) (int64, bool) { return b2i(e.Proc.ExeUpperLayer), e.Proc.Name != "" }},
		{name: "proc.is_exe_from_memfd", kind: kindBool, desc: "The executable is a memfd (fileless execution).",
			num: func(e *Event) (int64, bool) { return b2i(e.Proc.ExeFromMemfd), e.Proc.Name != "" }},

		// user.*, group.*
		{name: "user.uid", kind: kindInt, desc: "Effective user id.",
			num: func(e *Event) (int64, bool) { return e.User.UID, true }},
		{name: "user.name", kind: kindString, desc: "User name (from the container's /etc/passwd when known).",
			str: func(e *Event) (string, bool) { return nonEmpty(e.User.Name) }},
		{name: "user.loginuid", kind: kindInt, desc: "Audit login uid; -1 when unset.",
			num: func(e *Event) (int64, bool) { return e.User.LoginUID, true }},
		{name: "group.gid", kind: kindInt, desc: "Effective group id.",
			num: func(e *Event) (int64, bool) { return e.User.GID, true }},

		// fd.*
		{name: "fd.name", kind: kindString, desc: "File path, or `sip:sport->rip:rport` for a socket.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.FD.Name) }},
		{name: "fd.directory", kind: kindString, desc: "Directory of a file's path.",
			str: func(e *Event) (string, bool) {
				if !isFile(e) {
					return "", false
				}
				d, _ := splitPath(e.FD.Name)
				return d, d != ""
			}},
		{name: "fd.filename", kind: kindString, desc: "Base name of a file's path.",
			str: func(e *Event) (string, bool) {
				if !isFile(e) {
					return "", false
				}
				_, f := splitPath(e.FD.Name)
				return f, f != ""
			}},
		{name: "fd.typechar", kind: kindString, desc: "`f` file, `d` directory, `4` IPv4 socket, `6` IPv6 socket, `u` unix socket.",
			str: func(e *Event) (string, bool) {
				if e.FD.TypeChar == 0 {
					return "", false
				}
				return typeCharString(e.FD.TypeChar), true
			}},
		{name: "fd.sip", kind: kindIP, desc: "Socket's local (source) IP address.",
			ip: func(e *Event) (netip.Addr, bool) { return e.FD.SIP, e.FD.SIP.IsValid() }},
		{name: "fd.rip", kind: kindIP, desc: "Socket's remote IP address.",
			ip: func(e *Event) (netip.Addr, bool) { return e.FD.RIP, e.FD.RIP.IsValid() }},
		{name: "fd.sport", kind: kindInt, desc: "Socket's local port.",
			num: func(e *Event) (int64, bool) { return e.FD.SPort, e.FD.SIP.IsValid() }},
		{name: "fd.rport", kind: kindInt, desc: "Socket's remote port.",
			num: func(e *Event) (int64, bool) { return e.FD.RPort, e.FD.RIP.IsValid() }},
		{name: "fd.l4proto", kind: kindString, desc: "`tcp` or `udp`.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.FD.L4Proto) }},
		{name: "fd.net", kind: kindNet, desc: "Either end of the socket, compared with CIDRs: `fd.net = 10.0.0.0/8`, `fd.net in (...)`.",
			ips: func(e *Event) (netip.Addr, netip.Addr, bool) {
				return e.FD.SIP, e.FD.RIP, e.FD.SIP.IsValid() || e.FD.RIP.IsValid()
			}},
		{name: "fd.rnet", kind: kindNet, desc: "The remote end of the socket, compared with CIDRs.",
			ips: func(e *Event) (netip.Addr, netip.Addr, bool) { return e.FD.RIP, e.FD.RIP, e.FD.RIP.IsValid() }},
		{name: "fd.snet", kind: kindNet, desc: "The local end of the socket, compared with CIDRs.",
			ips: func(e *Event) (netip.Addr, netip.Addr, bool) { return e.FD.SIP, e.FD.SIP, e.FD.SIP.IsValid() }},

		// container.*, k8s.*
		{name: "container.id", kind: kindString, desc: "Container id; `host` for host processes.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Container.ID) }},
		{name: "container.name", kind: kindString, desc: "Container name.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Container.Name) }},
		{name: "container.image", kind: kindString, desc: "Image reference the container runs.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Container.Image) }},
		{name: "container.image.repository", kind: kindString, desc: "Image repository, without tag or digest.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.Container.ImageRepository) }},
		{name: "container.privileged", kind: kindBool, desc: "The container runs privileged.",
			num: func(e *Event) (int64, bool) {
				return b2i(e.Container.Privileged), e.Container.ID != "" && e.Container.ID != "host"
			}},
		{name: "k8s.ns.name", kind: kindString, desc: "Pod namespace.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.K8s.Namespace) }},
		{name: "k8s.pod.name", kind: kindString, desc: "Pod name.",
			str: func(e *Event) (string, bool) { return nonEmpty(e.K8s.PodName) }},
		{name: "k8s.pod.labels", kind: kindStrings, desc: "Pod labels as `key:value` values.",
			strs: func(e *Event) ([]string, bool) { return e.K8s.PodLabels, len(e.K8s.PodLabels) > 0 }},

		// ka.* (Kubernetes audit events)
		{name: "ka.verb", source: SourceK8sAudit, kind: kindString, desc: "Request verb (get, list, create, ...).",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.Verb) })},
		{name: "ka.uri", source: SourceK8sAudit, kind: kindString, desc: "Request URI.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.RequestURI) })},
		{name: "ka.useragent", source: SourceK8sAudit, kind: kindString, desc: "Client user agent.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.UserAgent) })},
		{name: "ka.stage", source: SourceK8sAudit, kind: kindString, desc: "Audit stage (ResponseComplete, ...).",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.Stage) })},
		{name: "ka.user.name", source: SourceK8sAudit, kind: kindString, desc: "Authenticated user name.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.User) })},
		{name: "ka.user.groups", source: SourceK8sAudit, kind: kindStrings, desc: "Groups of the authenticated user.",
			strs: auditList(func(a *AuditEvent) []string { return a.Groups })},
		{name: "ka.impuser.name", source: SourceK8sAudit, kind: kindString, desc: "Impersonated user name.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.ImpUser) })},
		{name: "ka.sourceips", source: SourceK8sAudit, kind: kindStrings, desc: "Source IPs of the request.",
			strs: auditList(func(a *AuditEvent) []string { return a.SourceIPs })},
		{name: "ka.target.resource", source: SourceK8sAudit, kind: kindString, desc: "Target resource (pods, secrets, ...).",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.Resource) })},
		{name: "ka.target.subresource", source: SourceK8sAudit, kind: kindString, desc: "Target subresource (exec, attach, ...).",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.Subresource) })},
		{name: "ka.target.namespace", source: SourceK8sAudit, kind: kindString, desc: "Target namespace.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.Namespace) })},
		{name: "ka.target.name", source: SourceK8sAudit, kind: kindString, desc: "Target object name.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.Name) })},
		{name: "ka.target.apigroup", source: SourceK8sAudit, kind: kindString, desc: "Target API group.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.APIGroup) })},
		{name: "ka.response.code", source: SourceK8sAudit, kind: kindInt, desc: "HTTP response code.",
			num: func(e *Event) (int64, bool) {
				if e.Audit == nil {
					return 0, false
				}
				return e.Audit.Code, e.Audit.HasCode
			}},
		{name: "ka.auth.decision", source: SourceK8sAudit, kind: kindString, desc: "Authorization decision annotation (allow/forbid).",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.AuthDecision) })},
		{name: "ka.req.pod.containers.privileged", source: SourceK8sAudit, kind: kindStrings, desc: "Per container of the pod (or workload template): `true`/`false`.",
			strs: auditList(func(a *AuditEvent) []string { return a.Privileged })},
		{name: "ka.req.pod.containers.image", source: SourceK8sAudit, kind: kindStrings, desc: "Images of the pod's containers.",
			strs: auditList(func(a *AuditEvent) []string { return a.Images })},
		{name: "ka.req.pod.containers.add_capabilities", source: SourceK8sAudit, kind: kindStrings, desc: "Capabilities added by any container.",
			strs: auditList(func(a *AuditEvent) []string { return a.AddCapabilities })},
		{name: "ka.req.pod.volumes.hostpath", source: SourceK8sAudit, kind: kindStrings, desc: "hostPath volume paths.",
			strs: auditList(func(a *AuditEvent) []string { return a.HostPaths })},
		{name: "ka.req.pod.host_network", source: SourceK8sAudit, kind: kindBool, desc: "The pod uses the host network.",
			num: func(e *Event) (int64, bool) { return podBool(e, func(a *AuditEvent) bool { return a.HostNetwork }) }},
		{name: "ka.req.pod.host_pid", source: SourceK8sAudit, kind: kindBool, desc: "The pod uses the host pid namespace.",
			num: func(e *Event) (int64, bool) { return podBool(e, func(a *AuditEvent) bool { return a.HostPID }) }},
		{name: "ka.req.binding.role", source: SourceK8sAudit, kind: kindString, desc: "roleRef name of a (Cluster)RoleBinding.",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.BindingRole) })},
		{name: "ka.req.binding.subjects", source: SourceK8sAudit, kind: kindStrings, desc: "Subject names of a binding.",
			strs: auditList(func(a *AuditEvent) []string { return a.BindingSubjects })},
		{name: "ka.req.role.rules.verbs", source: SourceK8sAudit, kind: kindStrings, desc: "Verbs of all rules of a (Cluster)Role.",
			strs: auditList(func(a *AuditEvent) []string { return a.RuleVerbs })},
		{name: "ka.req.role.rules.resources", source: SourceK8sAudit, kind: kindStrings, desc: "Resources of all rules of a (Cluster)Role.",
			strs: auditList(func(a *AuditEvent) []string { return a.RuleResources })},
		{name: "ka.req.service.type", source: SourceK8sAudit, kind: kindString, desc: "Service type (ClusterIP, NodePort, LoadBalancer).",
			str: audit(func(a *AuditEvent) (string, bool) { return nonEmpty(a.ServiceType) })},
		{name: "ka.req.service.ports", source: SourceK8sAudit, kind: kindStrings, desc: "Service ports.",
			strs: auditList(func(a *AuditEvent) []string { return a.ServicePorts })},
	}
}

func podBool(e *Event, f func(*AuditEvent) bool) (int64, bool) {
	if e.Audit == nil || !e.Audit.HasPodSpec {
		return 0, false
	}
	return b2i(f(e.Audit)), true
}

func isOpen(t EventType) bool {
	return t == EventOpen || t == EventOpenat || t == EventOpenat2 || t == EventCreat
}

// ancestorName returns proc.aname[n]: 0 is the process itself.
func ancestorName(e *Event, n int) (string, bool) {
	if n == 0 {
		return nonEmpty(e.Proc.Name)
	}
	if n < 1 || n > len(e.Proc.Ancestors) {
		return "", false
	}
	return nonEmpty(e.Proc.Ancestors[n-1].Name)
}

// splitPath splits a path at its last slash without allocating.
func splitPath(p string) (dir, file string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

// fieldIndex maps names to fields for one compilation.
type fieldIndex map[string]*field

func newFieldIndex() fieldIndex {
	t := fieldTable()
	idx := make(fieldIndex, len(t))
	for i := range t {
		idx[t[i].name] = &t[i]
	}
	return idx
}

// FieldsMarkdown renders the field table as the FIELDS.md document.
func FieldsMarkdown() string {
	var b strings.Builder
	b.WriteString("# Fields Bulwark's rules can use\n\n")
	b.WriteString("Generated from `fieldTable()` in fields.go by `go test ./internal/rules -run TestFieldsDoc -update`; a test fails when this file is stale.\n")
	b.WriteString("A rule (or its output) that uses any other field is reported at load time and skipped.\n\n")
	for _, src := range []Source{SourceSyscall, SourceK8sAudit} {
		b.WriteString("## Source `" + src.String() + "`\n\n| field | type | description |\n|---|---|---|\n")
		for _, f := range fieldTable() {
			if f.source != src {
				continue
			}
			name := f.name
			if f.arg == argIndex {
				name += "[N]"
			}
			b.WriteString("| `" + name + "` | " + kindNames[f.kind] + " | " + f.desc + " |\n")
		}
		b.WriteString("\n")
	}
	b.WriteString("Event types (`evt.type`): ")
	for t := EventType(1); t < numEventTypes; t++ {
		if t > 1 {
			b.WriteString(", ")
		}
		b.WriteString("`" + t.String() + "`")
	}
	b.WriteString(".\n\n" + strconv.Itoa(len(fieldTable())) + " fields.\n")
	return b.String()
}

// typeCharString returns fd.typechar without allocating.
func typeCharString(c byte) string {
	const chars = "fd46upe"
	if i := strings.IndexByte(chars, c); i >= 0 {
		return chars[i : i+1]
	}
	return "?"
}
