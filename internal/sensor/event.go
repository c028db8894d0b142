package sensor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// EventJSON is the JSON-lines form of one runtime event: what `--events`
// writes, what `bulwark sensor replay` reads and what an alert carries as
// evidence. Field names follow Falco's field names where one exists.
type EventJSON struct {
	Time      time.Time      `json:"time"`
	Type      string         `json:"type"`
	Enter     bool           `json:"enter,omitempty"`
	Proc      ProcJSON       `json:"proc"`
	User      UserJSON       `json:"user"`
	FD        *FDJSON        `json:"fd,omitempty"`
	Container ContainerJSON  `json:"container"`
	K8s       *K8sJSON       `json:"k8s,omitempty"`
	Args      *ArgsJSON      `json:"args,omitempty"`
	Extra     map[string]any `json:"extra,omitempty"` // written by detectors (e.g. prevented), ignored on replay
}

// ProcJSON is the process. Argv, when present, is split into exe/args/cmdline
// on decode; otherwise Args and Cmdline are taken as given.
type ProcJSON struct {
	Name          string         `json:"name,omitempty"`
	Exe           string         `json:"exe,omitempty"`
	ExePath       string         `json:"exepath,omitempty"`
	Argv          []string       `json:"argv,omitempty"`
	Args          string         `json:"args,omitempty"`
	Cmdline       string         `json:"cmdline,omitempty"`
	PID           int64          `json:"pid,omitempty"`
	PPID          int64          `json:"ppid,omitempty"`
	CWD           string         `json:"cwd,omitempty"`
	TTY           int64          `json:"tty,omitempty"`
	ExeUpperLayer bool           `json:"is_exe_upper_layer,omitempty"`
	ExeFromMemfd  bool           `json:"is_exe_from_memfd,omitempty"`
	Ancestors     []AncestorJSON `json:"ancestors,omitempty"`
}

type AncestorJSON struct {
	Name    string `json:"name"`
	Cmdline string `json:"cmdline,omitempty"`
}

type UserJSON struct {
	UID      int64  `json:"uid"`
	Name     string `json:"name,omitempty"`
	LoginUID int64  `json:"loginuid"`
	GID      int64  `json:"gid"`
}

type FDJSON struct {
	Name     string `json:"name,omitempty"`
	TypeChar string `json:"typechar,omitempty"`
	SIP      string `json:"sip,omitempty"`
	RIP      string `json:"rip,omitempty"`
	SPort    int64  `json:"sport,omitempty"`
	RPort    int64  `json:"rport,omitempty"`
	L4Proto  string `json:"l4proto,omitempty"`
}

type ContainerJSON struct {
	ID              string `json:"id,omitempty"`
	Name            string `json:"name,omitempty"`
	Image           string `json:"image,omitempty"`
	ImageRepository string `json:"image_repository,omitempty"`
	Privileged      bool   `json:"privileged,omitempty"`
}

type K8sJSON struct {
	Namespace string   `json:"ns,omitempty"`
	PodName   string   `json:"pod,omitempty"`
	PodLabels []string `json:"labels,omitempty"`
}

type ArgsJSON struct {
	Flags  int64  `json:"flags,omitempty"`
	Mode   int64  `json:"mode,omitempty"`
	Signal int64  `json:"sig,omitempty"`
	PID    int64  `json:"pid,omitempty"`
	UID    int64  `json:"uid,omitempty"`
	Name   string `json:"name,omitempty"`
}

// Limits on one replayed event: a recorded file is outside data.
const (
	maxEventLine = 1 << 20
	maxArgv      = 4096
	maxAncestors = 64
	maxLabels    = 256
)

// ErrBadEvent wraps every decoding problem of a replayed event.
var ErrBadEvent = errors.New("bad event")

// ToJSON converts an event for output.
func ToJSON(ev *rules.Event) EventJSON {
	j := EventJSON{
		Time:  time.Unix(0, ev.Time).UTC(),
		Type:  ev.Type.String(),
		Enter: ev.Enter,
		Proc: ProcJSON{
			Name: ev.Proc.Name, Exe: ev.Proc.Exe, ExePath: ev.Proc.ExePath, Args: ev.Proc.Args,
			Cmdline: ev.Proc.Cmdline, PID: ev.Proc.PID, PPID: ev.Proc.PPID, CWD: ev.Proc.CWD, TTY: ev.Proc.TTY,
			ExeUpperLayer: ev.Proc.ExeUpperLayer, ExeFromMemfd: ev.Proc.ExeFromMemfd,
		},
		User:      UserJSON{UID: ev.User.UID, Name: ev.User.Name, LoginUID: ev.User.LoginUID, GID: ev.User.GID},
		Container: ContainerJSON{ID: ev.Container.ID, Name: ev.Container.Name, Image: ev.Container.Image, ImageRepository: ev.Container.ImageRepository, Privileged: ev.Container.Privileged},
	}
	for _, a := range ev.Proc.Ancestors {
		j.Proc.Ancestors = append(j.Proc.Ancestors, AncestorJSON(a))
	}
	if ev.FD != (rules.FD{}) {
		f := &FDJSON{Name: ev.FD.Name, SPort: ev.FD.SPort, RPort: ev.FD.RPort, L4Proto: ev.FD.L4Proto}
		if ev.FD.TypeChar != 0 {
			f.TypeChar = string(rune(ev.FD.TypeChar))
		}
		if ev.FD.SIP.IsValid() {
			f.SIP = ev.FD.SIP.String()
		}
		if ev.FD.RIP.IsValid() {
			f.RIP = ev.FD.RIP.String()
		}
		j.FD = f
	}
	if ev.K8s.Namespace != "" || ev.K8s.PodName != "" || len(ev.K8s.PodLabels) > 0 {
		j.K8s = &K8sJSON{Namespace: ev.K8s.Namespace, PodName: ev.K8s.PodName, PodLabels: ev.K8s.PodLabels}
	}
	if ev.Args != (rules.Args{}) {
		a := ArgsJSON(ev.Args)
		j.Args = &a
	}
	return j
}

// DecodeEvent parses one JSON line into ev (reset first). Unknown keys are
// errors, so a typo in a hand-written test event is not silently ignored.
func DecodeEvent(line []byte, ev *rules.Event) error {
	if len(line) > maxEventLine {
		return fmt.Errorf("%w: line longer than %d bytes", ErrBadEvent, maxEventLine)
	}
	var j EventJSON
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the event", ErrBadEvent)
	}
	return fromJSON(&j, ev)
}

func fromJSON(j *EventJSON, ev *rules.Event) error {
	*ev = rules.Event{}
	t, ok := rules.ParseEventType(j.Type)
	if !ok {
		return fmt.Errorf("%w: unknown event type %q", ErrBadEvent, trunc(j.Type, 40))
	}
	if len(j.Proc.Argv) > maxArgv || len(j.Proc.Ancestors) > maxAncestors || (j.K8s != nil && len(j.K8s.PodLabels) > maxLabels) {
		return fmt.Errorf("%w: too many argv, ancestors or labels", ErrBadEvent)
	}
	ev.Type, ev.Enter = t, j.Enter
	if !j.Time.IsZero() {
		ev.Time = j.Time.UnixNano()
	}
	p := j.Proc
	ev.Proc = rules.Process{Name: p.Name, Exe: p.Exe, ExePath: p.ExePath, Args: p.Args, Cmdline: p.Cmdline,
		PID: p.PID, PPID: p.PPID, CWD: p.CWD, TTY: p.TTY, ExeUpperLayer: p.ExeUpperLayer, ExeFromMemfd: p.ExeFromMemfd}
	if len(p.Argv) > 0 {
		ev.Proc.SetArgv(p.Argv)
	} else if ev.Proc.Cmdline == "" {
		ev.Proc.Cmdline = joinCmd(p.Name, p.Args)
	}
	for _, a := range p.Ancestors {
		ev.Proc.Ancestors = append(ev.Proc.Ancestors, rules.Ancestor(a))
	}
	ev.User = rules.User{UID: j.User.UID, Name: j.User.Name, LoginUID: j.User.LoginUID, GID: j.User.GID}
	if f := j.FD; f != nil {
		ev.FD = rules.FD{Name: f.Name, SPort: f.SPort, RPort: f.RPort, L4Proto: f.L4Proto}
		if len(f.TypeChar) > 1 {
			return fmt.Errorf("%w: fd.typechar %q is not one character", ErrBadEvent, trunc(f.TypeChar, 40))
		}
		if f.TypeChar != "" {
			ev.FD.TypeChar = f.TypeChar[0]
		}
		for _, x := range []struct {
			s   string
			dst *netip.Addr
		}{{f.SIP, &ev.FD.SIP}, {f.RIP, &ev.FD.RIP}} {
			if x.s == "" {
				continue
			}
			a, err := netip.ParseAddr(x.s)
			if err != nil {
				return fmt.Errorf("%w: fd address %q", ErrBadEvent, trunc(x.s, 60))
			}
			*x.dst = a
		}
	}
	c := j.Container
	ev.Container = rules.Container{ID: c.ID, Name: c.Name, Image: c.Image, ImageRepository: c.ImageRepository, Privileged: c.Privileged}
	if j.K8s != nil {
		ev.K8s = rules.K8s{Namespace: j.K8s.Namespace, PodName: j.K8s.PodName, PodLabels: j.K8s.PodLabels}
	}
	if j.Args != nil {
		ev.Args = rules.Args(*j.Args)
	}
	return nil
}

func joinCmd(name, args string) string {
	if args == "" {
		return name
	}
	return name + " " + args
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
