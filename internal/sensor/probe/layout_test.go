package probe

import (
	"testing"
	"unsafe"
)

// TestLayout keeps the hand-written decoder offsets in step with the structs
// bpf2go generated from the C code.
func TestLayout(t *testing.T) {
	var x sensorExecEvent
	var p sensorPathEvent
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"hdr size", unsafe.Sizeof(sensorEventHdr{}), hdrSize},
		{"small size", unsafe.Sizeof(sensorSmallEvent{}), smallSize},
		{"path size", unsafe.Sizeof(p), pathSize},
		{"exec size", unsafe.Sizeof(x), execSize},
		{"hdr comm", unsafe.Offsetof(x.H.Comm), 48},
		{"hdr flags", unsafe.Offsetof(x.H.Flags), 18},
		{"hdr loginuid", unsafe.Offsetof(x.H.Loginuid), 40},
		{"exec ino", unsafe.Offsetof(x.Ino), offIno},
		{"exec dev", unsafe.Offsetof(x.Dev), offDev},
		{"exec filename_len", unsafe.Offsetof(x.FilenameLen), offFnameLen},
		{"exec args_len", unsafe.Offsetof(x.ArgsLen), offArgsLen},
		{"exec ancestors", unsafe.Offsetof(x.Ancestors), offAncestors},
		{"exec filename", unsafe.Offsetof(x.Filename), offFilename},
		{"exec args", unsafe.Offsetof(x.Args), offArgs},
		{"exec cwd", unsafe.Offsetof(x.Cwd), offCwd},
		{"path a", unsafe.Offsetof(p.A), offA},
		{"path len", unsafe.Offsetof(p.PathLen), offPathLen},
		{"path path", unsafe.Offsetof(p.Path), offPath},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: generated %d, decoder uses %d", c.name, c.got, c.want)
		}
	}
}
