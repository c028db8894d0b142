package rules

import "net/netip"

// EventType is the system call (or pseudo event) a runtime Event reports. It
// is a small integer so the engine can index rules by type in an array and
// test "evt.type in (...)" with a bit set instead of comparing strings.
type EventType uint8

// The event types Bulwark's sensor can report, named as Falco names them.
// EventUnknown (0) never matches a typed rule.
const (
	EventUnknown EventType = iota
	EventExecve
	EventExecveat
	EventOpen
	EventOpenat
	EventOpenat2
	EventCreat
	EventConnect
	EventAccept
	EventAccept4
	EventListen
	EventBind
	EventUnlink
	EventUnlinkat
	EventRename
	EventRenameat
	EventRenameat2
	EventChmod
	EventFchmod
	EventFchmodat
	EventSetuid
	EventSetgid
	EventSetresuid
	EventSetresgid
	EventPtrace
	EventUnshare
	EventSetns
	EventClone
	EventClone3
	EventInitModule
	EventFinitModule
	EventKill
	EventTkill
	EventTgkill
	EventMemfdCreate
	EventUtimensat
	EventTruncate
	EventFtruncate
	EventProcexit
	EventMount
	EventSymlink
	EventSymlinkat
	EventMkdir
	EventMkdirat
	EventSendto
	numEventTypes
)

var eventTypeNames = [numEventTypes]string{
	"unknown", "execve", "execveat", "open", "openat", "openat2", "creat", "connect",
	"accept", "accept4", "listen", "bind", "unlink", "unlinkat", "rename", "renameat",
	"renameat2", "chmod", "fchmod", "fchmodat", "setuid", "setgid", "setresuid", "setresgid",
	"ptrace", "unshare", "setns", "clone", "clone3", "init_module", "finit_module", "kill",
	"tkill", "tgkill", "memfd_create", "utimensat", "truncate", "ftruncate", "procexit",
	"mount", "symlink", "symlinkat", "mkdir", "mkdirat", "sendto",
}

// String returns Falco's name for the event type.
func (t EventType) String() string {
	if t < numEventTypes {
		return eventTypeNames[t]
	}
	return "unknown"
}

// ParseEventType returns the EventType called name, and false when Bulwark
// cannot produce such an event.
func ParseEventType(name string) (EventType, bool) {
	for i := EventType(1); i < numEventTypes; i++ {
		if eventTypeNames[i] == name {
			return i, true
		}
	}
	return EventUnknown, false
}

// typeSet is a bit set of event types; numEventTypes must stay below 128.
type typeSet [2]uint64

func (s *typeSet) add(t EventType)      { s[t>>6] |= 1 << (t & 63) }
func (s typeSet) has(t EventType) bool  { return s[t>>6]&(1<<(t&63)) != 0 }
func (s typeSet) and(o typeSet) typeSet { return typeSet{s[0] & o[0], s[1] & o[1]} }
func (s typeSet) or(o typeSet) typeSet  { return typeSet{s[0] | o[0], s[1] | o[1]} }
func (s typeSet) empty() bool           { return s[0] == 0 && s[1] == 0 }
func allTypes() (s typeSet) {
	for t := EventType(1); t < numEventTypes; t++ {
		s.add(t)
	}
	return s
}

// Event is one runtime event as the sensor reports it, already attributed to
// its process, container and pod. The producer fills it once (joined command
// lines included) so that evaluating rules never allocates; the engine only
// reads it. An Event with Audit set is a Kubernetes audit event and is
// evaluated against k8s_audit rules only.
type Event struct {
	Type EventType
	// Enter is true for a syscall-entry event; Bulwark reports completed
	// calls, so evt.dir is "<" unless this is set.
	Enter bool
	// Time is the event time in nanoseconds since the Unix epoch.
	Time int64

	Proc      Process
	User      User
	FD        FD
	Container Container
	K8s       K8s
	Args      Args

	Audit *AuditEvent
}

// Process describes the process that made the call.
type Process struct {
	Name    string // comm / basename of the executable
	Exe     string // argv[0]
	ExePath string // full path of the executable
	Args    string // argv[1:] joined by spaces
	Cmdline string // Name followed by Args, as Falco's proc.cmdline
	PID     int64
	PPID    int64
	CWD     string
	TTY     int64
	// ExeUpperLayer is true when the executable lives in the container's
	// writable overlay layer (it was not in the image): drift.
	ExeUpperLayer bool
	// ExeFromMemfd is true when the executable is a memfd (fileless).
	ExeFromMemfd bool
	// Ancestors are the parent (index 0), grandparent, ... up to the sensor's depth.
	Ancestors []Ancestor
}

// Ancestor is one process up the parent chain.
type Ancestor struct {
	Name    string
	Cmdline string
}

// SetArgv fills Exe, Args and Cmdline from argv (Name must already be set).
// It allocates; call it once when the event is built, not per rule.
func (p *Process) SetArgv(argv []string) {
	if len(argv) == 0 {
		p.Cmdline = p.Name
		return
	}
	p.Exe = argv[0]
	n := 0
	for _, a := range argv[1:] {
		n += len(a) + 1
	}
	b := make([]byte, 0, n)
	for i, a := range argv[1:] {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	p.Args = string(b)
	if p.Args == "" {
		p.Cmdline = p.Name
	} else {
		p.Cmdline = p.Name + " " + p.Args
	}
}

// User is the credentials of the process.
type User struct {
	UID      int64
	Name     string
	LoginUID int64 // -1 when unset, as Falco
	GID      int64
}

// FD is the file or socket the call acted on. Name follows Falco: a path for
// files, "sip:sport->rip:rport" for connected sockets.
type FD struct {
	Name string
	// TypeChar is Falco's fd.typechar: 'f' file, '4' IPv4, '6' IPv6, 'u' unix,
	// 'd' directory; 0 when the event carries no file descriptor.
	TypeChar byte
	SIP      netip.Addr
	RIP      netip.Addr
	SPort    int64
	RPort    int64
	L4Proto  string // "tcp", "udp"
}

// Container is the container the process runs in; ID is "host" for host processes.
type Container struct {
	ID              string
	Name            string
	Image           string // full reference, e.g. "docker.io/library/nginx:1.25"
	ImageRepository string // e.g. "docker.io/library/nginx"
	Privileged      bool
}

// K8s is the pod the container belongs to.
type K8s struct {
	Namespace string
	PodName   string
	// PodLabels are "key:value" strings, as Falco renders k8s.pod.labels.
	PodLabels []string
}

// Args are the syscall arguments rules may test (evt.arg.*): a limited set.
type Args struct {
	Flags  int64  // open flags, clone/unshare flags
	Mode   int64  // chmod mode
	Signal int64  // kill signal
	PID    int64  // target pid of kill/ptrace
	UID    int64  // new uid of setuid
	Name   string // module name, path argument, etc.
}

// Open flags, clone/unshare flags Bulwark reports in Args.Flags.
const (
	OpenWrite  = 0x1   // O_WRONLY
	OpenRDWR   = 0x2   // O_RDWR
	OpenCreate = 0x40  // O_CREAT
	OpenTrunc  = 0x200 // O_TRUNC
)
