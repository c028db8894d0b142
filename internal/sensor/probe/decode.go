package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// Decoding errors; callers count them and carry on.
var (
	ErrShortSample = errors.New("sample shorter than its event")
	ErrUnknownKind = errors.New("unknown event kind")
)

// ContainerIDs attributes a cgroup id to a container id, "host" for host
// processes and "" when unknown. CgroupResolver is the real one.
type ContainerIDs interface {
	ContainerID(cgroupID uint64) string
}

// procInfo is what an exec told us about a process; later events of that
// process (opens, connects) carry only the kernel's comm, so the decoder
// fills the rest from here.
type procInfo struct {
	name, exe, exePath, args, cmdline, cwd string
	upper, memfd                           bool
	ancestors                              []rules.Ancestor
}

// Decoder turns ring-buffer samples into rules.Event values. It is not safe
// for concurrent use; Probe.Read owns one. Repeated strings (comm names,
// paths) are interned, so a steady stream of events allocates little.
type Decoder struct {
	ids        ContainerIDs
	bootOffset int64 // unix ns = boot ns + bootOffset
	procFS     string

	comms map[[commLen]byte]string
	strs  map[string]string
	procs map[uint32]*procInfo

	lastCg uint64
	lastID string
	hasCg  bool
}

// Bounds of the decoder's caches: a hostile or busy node cannot grow them
// without limit.
const (
	maxComms = 4096
	maxStrs  = 8192
	maxProcs = 32768
	maxNames = 512 // longest string interned
)

// NewDecoder returns a decoder that attributes containers with ids (nil: no
// attribution) and converts kernel boot-clock times with bootOffset
// (nanoseconds to add to CLOCK_BOOTTIME to get the Unix time). procFS, when
// not empty ("/proc"), is read once per unknown process to fill its command
// line (processes that started before the sensor).
func NewDecoder(ids ContainerIDs, bootOffset int64, procFS string) *Decoder {
	return &Decoder{
		ids:        ids,
		bootOffset: bootOffset,
		procFS:     procFS,
		comms:      make(map[[commLen]byte]string),
		strs:       make(map[string]string),
		procs:      make(map[uint32]*procInfo),
	}
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

// cstr returns b up to its first NUL.
func cstr(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

func (d *Decoder) comm(b []byte) string {
	var k [commLen]byte
	copy(k[:], cstr(b))
	if s, ok := d.comms[k]; ok {
		return s
	}
	s := string(cstr(k[:]))
	if len(d.comms) >= maxComms {
		clear(d.comms)
	}
	d.comms[k] = s
	return s
}

// intern returns b as a string, shared with earlier equal strings.
func (d *Decoder) intern(b []byte) string {
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= maxNames {
		if len(d.strs) >= maxStrs {
			clear(d.strs)
		}
		d.strs[s] = s
	}
	return s
}

func (d *Decoder) containerID(cg uint64) string {
	if d.ids == nil {
		return ""
	}
	if d.hasCg && cg == d.lastCg {
		return d.lastID
	}
	id := d.ids.ContainerID(cg)
	d.lastCg, d.lastID, d.hasCg = cg, id, true
	return id
}

// Decode fills ev from one sample. ev is reset first; its strings stay valid
// after the next Decode (they are never aliased to the sample).
func (d *Decoder) Decode(b []byte, ev *rules.Event) error {
	*ev = rules.Event{}
	if len(b) < hdrSize {
		return fmt.Errorf("decode: %w (%d bytes)", ErrShortSample, len(b))
	}
	kind := le16(b, 16)
	if kind == 0 || kind >= kindMax {
		return fmt.Errorf("decode: %w %d", ErrUnknownKind, kind)
	}
	need := pathSize
	switch kind {
	case kindExec:
		need = execSize
	case kindExit, kindConnect, kindListen, kindSetuid, kindSetgid, kindSetresuid, kindSetresgid,
		kindPtrace, kindUnshare, kindSetns, kindClone, kindClone3:
		need = smallSize
	}
	if len(b) < need {
		return fmt.Errorf("decode %s: %w (%d < %d bytes)", kindType[kind], ErrShortSample, len(b), need)
	}

	flags := le16(b, 18)
	pid := le32(b, 20)
	ev.Type = kindType[kind]
	ev.Time = int64(le64(b, 0)) + d.bootOffset
	ev.Proc.PID = int64(pid)
	ev.Proc.PPID = int64(le32(b, 28))
	ev.User.UID = int64(le32(b, 32))
	ev.User.GID = int64(le32(b, 36))
	ev.User.LoginUID = int64(int32(le32(b, 40)))
	ev.Container.ID = d.containerID(le64(b, 8))
	comm := d.comm(b[48 : 48+commLen])

	if kind == kindExec {
		d.decodeExec(b, flags, comm, ev)
		return nil
	}
	ev.Proc.Name = comm
	if kind == kindExit {
		// An exit only retires the process: no /proc read (the process
		// is gone) and no inheritance for a pid about to be forgotten.
		if p := d.procs[pid]; p != nil {
			d.fill(ev, p, comm)
			delete(d.procs, pid)
		} else if pp := d.procs[uint32(ev.Proc.PPID)]; pp != nil && strings.HasPrefix(pp.name, comm) {
			d.fill(ev, pp, comm) // a forked child that did not exec
		}
		if ev.Proc.Cmdline == "" {
			ev.Proc.Cmdline = ev.Proc.Name
		}
		return nil
	}
	if p := d.proc(pid, uint32(ev.Proc.PPID), comm); p != nil {
		d.fill(ev, p, comm)
	}
	if ev.Proc.Cmdline == "" {
		ev.Proc.Cmdline = ev.Proc.Name
	}

	a0, a1 := le64(b, offA), le64(b, offA+8)
	switch kind {
	case kindConnect, kindListen:
		d.decodeSocket(b, kind, a0, ev)
	case kindSetuid, kindSetresuid:
		if kind == kindSetresuid {
			a0 = a1 // the effective uid is the one that grants privileges
		}
		ev.Args.UID = int64(int32(uint32(a0)))
	case kindSetgid, kindSetresgid:
		ev.Args.Flags = int64(int32(uint32(a0))) // no gid argument field: the gid is in flags
	case kindPtrace:
		ev.Args.Flags = int64(a0)
		ev.Args.PID = int64(int32(uint32(a1)))
	case kindUnshare, kindClone, kindClone3:
		ev.Args.Flags = int64(a0)
	case kindSetns:
		ev.Args.Flags = int64(a0)
	default: // events with a path
		plen := int(le16(b, offPathLen))
		if plen > pathSize-offPath {
			plen = pathSize - offPath
		}
		path := d.intern(cstr(b[offPath : offPath+plen]))
		switch kind {
		case kindOpen, kindOpenat, kindOpenat2:
			ev.FD.Name, ev.FD.TypeChar = path, 'f'
			ev.Args.Flags, ev.Args.Mode = int64(a0), int64(a1)
		case kindChmod, kindFchmod, kindFchmodat:
			ev.FD.Name, ev.FD.TypeChar, ev.Args.Name = path, 'f', path
			ev.Args.Mode = int64(a0)
		case kindUnlink, kindUnlinkat, kindRename, kindRenameat, kindRenameat2, kindTruncate:
			ev.FD.Name, ev.FD.TypeChar, ev.Args.Name = path, 'f', path
			ev.Args.Flags = int64(a0)
		case kindFinitModule:
			ev.FD.Name, ev.FD.TypeChar = path, 'f'
			ev.Args.Name = strings.TrimSuffix(strings.TrimSuffix(path, ".xz"), ".ko")
			ev.Args.Flags = int64(a0)
		case kindInitModule:
			// init_module carries the module image, not its name; the
			// parameter string is all the call names.
			ev.Args.Flags = int64(a0)
		case kindMemfdCreate:
			ev.Args.Name = path
			ev.Args.Flags = int64(a0)
		}
	}
	return nil
}

func (d *Decoder) decodeSocket(b []byte, kind uint16, a0 uint64, ev *rules.Event) {
	family := uint16(a0)
	socktype := uint16(a0 >> 16)
	port := int64(uint16(a0 >> 32))
	var addr netip.Addr
	switch family {
	case 2:
		addr = netip.AddrFrom4([4]byte(b[offA+16 : offA+20]))
		ev.FD.TypeChar = '4'
	case 10:
		addr = netip.AddrFrom16([16]byte(b[offA+16 : offA+32])).Unmap()
		ev.FD.TypeChar = '6'
		if addr.Is4() {
			ev.FD.TypeChar = '4'
		}
	default:
		return
	}
	switch socktype {
	case 1:
		ev.FD.L4Proto = "tcp"
	case 2:
		ev.FD.L4Proto = "udp"
	}
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	if kind == kindListen {
		ev.FD.SIP, ev.FD.SPort = addr, port
		ev.FD.Name = ap
		return
	}
	// The local end is not bound yet when connect is entered: Falco's
	// "sip:sport->rip:rport" loses its left side.
	ev.FD.RIP, ev.FD.RPort = addr, port
	ev.FD.Name = "->" + ap
}

func (d *Decoder) decodeExec(b []byte, flags uint16, comm string, ev *rules.Event) {
	flen := int(le16(b, offFnameLen))
	if flen > offArgs-offFilename {
		flen = offArgs - offFilename
	}
	filename := d.intern(cstr(b[offFilename : offFilename+flen]))
	alen := int(le16(b, offArgsLen))
	if alen > offCwd-offArgs {
		alen = offCwd - offArgs
	}
	args := b[offArgs : offArgs+alen]
	for len(args) > 0 && args[len(args)-1] == 0 {
		args = args[:len(args)-1]
	}

	p := &procInfo{upper: flags&flagUpper != 0, memfd: flags&flagMemfd != 0}
	// comm is the executable's basename cut at 15 bytes; prefer the full
	// basename when comm is a prefix of it (long names like bulwark_alerttest_x).
	p.name = comm
	if base := filename[strings.LastIndexByte(filename, '/')+1:]; len(comm) == commLen-1 && strings.HasPrefix(base, comm) {
		p.name = base
	}
	if i := bytes.IndexByte(args, 0); i >= 0 {
		p.exe = d.intern(args[:i])
		// A multi-call binary re-executing itself (busybox ash runs applets
		// as /proc/self/exe, as on Alpine) gets comm "exe": its argv[0]
		// names what runs.
		if strings.HasPrefix(filename, "/proc/") && strings.HasSuffix(filename, "/exe") && p.exe != "" {
			p.name = p.exe[strings.LastIndexByte(p.exe, '/')+1:]
		}
		rest := args[i+1:]
		if len(rest) > 0 {
			s := []byte(string(rest)) // one copy, NULs become spaces
			for j := range s {
				if s[j] == 0 {
					s[j] = ' '
				}
			}
			p.args = string(s)
		}
	} else if len(args) > 0 {
		p.exe = d.intern(args)
	} else {
		p.exe = filename
	}
	if p.args == "" {
		p.cmdline = p.name
	} else {
		p.cmdline = p.name + " " + p.args
	}
	p.cwd = d.cwd(b, flags)
	p.exePath = filename
	if filename != "" && filename[0] != '/' && p.cwd != "" && !p.memfd {
		p.exePath = joinPath(p.cwd, filename)
	}
	p.ancestors = make([]rules.Ancestor, 0, numAncestors)
	for i := 0; i < numAncestors; i++ {
		off := offAncestors + i*commLen
		if b[off] == 0 {
			break
		}
		a := rules.Ancestor{Name: d.comm(b[off : off+commLen])}
		if i == 0 {
			if pp := d.procs[uint32(ev.Proc.PPID)]; pp != nil {
				a.Cmdline = pp.cmdline
				if strings.HasPrefix(pp.name, a.Name) {
					a.Name = pp.name
				}
			}
		}
		p.ancestors = append(p.ancestors, a)
	}

	ev.Proc.Name, ev.Proc.Exe, ev.Proc.ExePath, ev.Proc.Args, ev.Proc.Cmdline, ev.Proc.CWD =
		p.name, p.exe, p.exePath, p.args, p.cmdline, p.cwd
	ev.Proc.ExeUpperLayer, ev.Proc.ExeFromMemfd = p.upper, p.memfd
	ev.Proc.Ancestors = p.ancestors
	ev.Args.Flags = int64(flags & flagPrevented) // 1 when the exec was killed (prevention)
	if flags&flagPrevented == 0 {
		d.remember(uint32(ev.Proc.PID), p)
	}
}

// fill copies what an exec told about the process into ev.
func (d *Decoder) fill(ev *rules.Event, p *procInfo, comm string) {
	if strings.HasPrefix(p.name, comm) {
		ev.Proc.Name = p.name
	}
	ev.Proc.Exe, ev.Proc.ExePath, ev.Proc.Args, ev.Proc.Cmdline, ev.Proc.CWD = p.exe, p.exePath, p.args, p.cmdline, p.cwd
	ev.Proc.ExeUpperLayer, ev.Proc.ExeFromMemfd = p.upper, p.memfd
	ev.Proc.Ancestors = p.ancestors
}

// Prevented reports whether an exec event was blocked by drift prevention
// (the process was killed before it ran).
func Prevented(ev *rules.Event) bool {
	return (ev.Type == rules.EventExecve || ev.Type == rules.EventExecveat) && ev.Args.Flags&flagPrevented != 0
}

func (d *Decoder) cwd(b []byte, flags uint16) string {
	var parts [cwdParts][]byte
	n := 0
	for i := 0; i < cwdParts; i++ {
		off := offCwd + i*cwdPartLen
		c := cstr(b[off : off+cwdPartLen])
		if len(c) == 0 {
			break
		}
		parts[n] = c
		n++
	}
	if n == 0 {
		return "/"
	}
	var buf [cwdParts * (cwdPartLen + 1)]byte
	out := buf[:0]
	if flags&flagCwdTrunc != 0 {
		out = append(out, "/..."...)
	}
	for i := n - 1; i >= 0; i-- {
		out = append(out, '/')
		out = append(out, parts[i]...)
	}
	return d.intern(out)
}

func joinPath(dir, rel string) string {
	for strings.HasPrefix(rel, "./") {
		rel = rel[2:]
	}
	if strings.HasSuffix(dir, "/") {
		return dir + rel
	}
	return dir + "/" + rel
}

func (d *Decoder) remember(pid uint32, p *procInfo) {
	if len(d.procs) >= maxProcs {
		for k := range d.procs { // evict an arbitrary entry
			delete(d.procs, k)
			break
		}
	}
	d.procs[pid] = p
}

// proc returns what is known of pid (or its parent, for a fork), reading /proc once for a process that
// exec'd before the sensor started.
func (d *Decoder) proc(pid, ppid uint32, comm string) *procInfo {
	if p, ok := d.procs[pid]; ok {
		return p
	}
	// A forked child that did not exec shares its parent's image.
	if pp, ok := d.procs[ppid]; ok && strings.HasPrefix(pp.name, comm) {
		d.remember(pid, pp)
		return pp
	}
	if d.procFS == "" {
		return nil
	}
	p := &procInfo{name: comm, cmdline: comm}
	dir := d.procFS + "/" + strconv.FormatUint(uint64(pid), 10)
	if raw, err := readSmall(dir+"/cmdline", 4096); err == nil && len(raw) > 0 {
		raw = bytes.TrimRight(raw, "\x00")
		argv := bytes.Split(raw, []byte{0})
		p.exe = string(argv[0])
		if len(argv) > 1 {
			p.args = string(bytes.Join(argv[1:], []byte{' '}))
			p.cmdline = comm + " " + p.args
		}
	}
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		p.exePath = exe
	}
	d.remember(pid, p)
	return p
}

func readSmall(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, limit)
	n, err := f.Read(buf)
	if n > 0 {
		return buf[:n], nil
	}
	return nil, err
}
