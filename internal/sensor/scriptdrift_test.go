package sensor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/rules"
)

func TestScriptCandidate(t *testing.T) {
	type want struct {
		script, interp string
		shebang, ok    bool
	}
	exec := func(exepath, exe, args, cwd string) rules.Event {
		return rules.Event{Type: rules.EventExecve, Container: rules.Container{ID: c1},
			Proc: rules.Process{Name: filepath.Base(exepath), ExePath: exepath, Exe: exe, Args: args, CWD: cwd}}
	}
	d := &ScriptDrift{}
	for name, tc := range map[string]struct {
		ev   rules.Event
		want want
	}{
		// What the kernel reports for "./x.sh" with "#!/bin/sh": filename = the script, argv[0] = the interpreter.
		"shebang":             {exec("/tmp/x.sh", "/bin/sh", "./x.sh", "/tmp"), want{"/tmp/x.sh", "sh", true, true}},
		"shebang env python":  {exec("/app/run", "/usr/bin/python3", "/app/run", "/"), want{"/app/run", "python3", true, true}},
		"sh operand":          {exec("/bin/sh", "sh", "/tmp/y.sh", "/"), want{"/tmp/y.sh", "sh", false, true}},
		"busybox self exe":    {exec("/proc/self/exe", "sh", "./job.sh", "/opt"), want{"./job.sh", "sh", false, true}},
		"busybox sh applet":   {exec("/bin/busybox", "busybox", "sh /tmp/a.sh", "/"), want{"/tmp/a.sh", "busybox", false, true}},
		"busybox as argv0 sh": {exec("/bin/busybox", "sh", "/tmp/a.sh", "/"), want{"/tmp/a.sh", "busybox", false, true}},
		"bash with flags":     {exec("/bin/bash", "bash", "-x -o pipefail /tmp/b.sh arg", "/"), want{"/tmp/b.sh", "bash", false, true}},
		"python3.11 script":   {exec("/usr/bin/python3.11", "python3", "-u /srv/app.py", "/"), want{"/srv/app.py", "python3.11", false, true}},
		"perl":                {exec("/usr/bin/perl", "perl", "-w /x.pl", "/"), want{"/x.pl", "perl", false, true}},
		"node require":        {exec("/usr/local/bin/node", "node", "-r dotenv/config server.js", "/app"), want{"server.js", "node", false, true}},
		"php -f":              {exec("/usr/bin/php", "php", "-d x=1 -f /var/www/s.php", "/"), want{"/var/www/s.php", "php", false, true}},
		"ruby":                {exec("/usr/bin/ruby", "ruby", "/x.rb", "/"), want{"/x.rb", "ruby", false, true}},
		"sh -c":               {exec("/bin/sh", "sh", "-c echo hi", "/"), want{}},
		"sh -ec":              {exec("/bin/sh", "sh", "-ec echo hi", "/"), want{}},
		"python -c":           {exec("/usr/bin/python3", "python3", "-c print(1)", "/"), want{}},
		"python -m":           {exec("/usr/bin/python3", "python3", "-m http.server", "/"), want{}},
		"perl -e":             {exec("/usr/bin/perl", "perl", "-e print", "/"), want{}},
		"node -e":             {exec("/usr/bin/node", "node", "-e 1", "/"), want{}},
		"php -r":              {exec("/usr/bin/php", "php", "-r echo;", "/"), want{}},
		"interactive sh":      {exec("/bin/sh", "sh", "", "/"), want{}},
		"plain binary":        {exec("/bin/ls", "ls", "/tmp", "/"), want{}},
		"busybox ls":          {exec("/bin/busybox", "busybox", "ls /tmp", "/"), want{}},
		"python symlink name": {exec("/usr/bin/python3.11", "python3", "", "/"), want{}},
		"host":                {rules.Event{Type: rules.EventExecve, Container: rules.Container{ID: "host"}, Proc: rules.Process{ExePath: "/bin/sh", Exe: "sh", Args: "/tmp/x"}}, want{}},
		"upper binary":        {rules.Event{Type: rules.EventExecve, Container: rules.Container{ID: c1}, Proc: rules.Process{ExePath: "/tmp/sh", Exe: "sh", Args: "/tmp/x", ExeUpperLayer: true}}, want{}},
		"not exec":            {rules.Event{Type: rules.EventOpen, Container: rules.Container{ID: c1}, Proc: rules.Process{ExePath: "/bin/sh", Exe: "sh", Args: "/tmp/x"}}, want{}},
		"shell-like name":     {exec("/usr/bin/shellcheck", "shellcheck", "/x.sh", "/"), want{}},
	} {
		var got want
		got.script, got.interp, got.shebang, got.ok = d.Candidate(&tc.ev)
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

func TestMountinfoOverlay(t *testing.T) {
	mi := []byte(`600 500 0:55 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/l\0721:/var/lib/l2,upperdir=/var/lib/my\040up,workdir=/var/lib/w
601 600 0:56 / /proc rw,nosuid - proc proc rw
602 600 0:57 / /tmp/vol rw - tmpfs tmpfs rw
603 600 0:58 / /tmp/vol/sub rw shared:1 master:2 - ext4 /dev/sda1 rw
bad line
`)
	ms := parseMountinfo(mi)
	if len(ms) != 4 {
		t.Fatalf("mounts: %+v", ms)
	}
	for p, want := range map[string]string{"/tmp/x.sh": "/", "/tmp/vol/a": "/tmp/vol", "/tmp/volx": "/", "/tmp/vol/sub/b": "/tmp/vol/sub", "/proc": "/proc"} {
		if m := mountFor(ms, p); m == nil || m.point != want {
			t.Errorf("mountFor(%s) = %+v, want %s", p, m, want)
		}
	}
	up, lows := overlayDirs(ms[0].super)
	if up != "/var/lib/my up" || !cmp.Equal(lows, []string{"/var/lib/l:1", "/var/lib/l2"}) {
		t.Errorf("overlay dirs: %q %q", up, lows)
	}
	if up, lows := overlayDirs("rw,lowerdir+=/a,lowerdir+=/b,upperdir=/u"); up != "/u" || len(lows) != 2 {
		t.Errorf("lowerdir+: %q %q", up, lows)
	}
}

// resolveIn follows symlinks as the container would and never leaves the root.
func TestResolveInContainerRoot(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"real/dir", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "real/dir/s.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for l, target := range map[string]string{"abs": "/real/dir", "rel": "real/dir", "up": "../../../../etc", "loop": "loop", "escape": "../../../../../../../../../etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for in, want := range map[string]string{
		"/abs/s.sh": "/real/dir/s.sh", "/rel/s.sh": "/real/dir/s.sh", "/real/./dir/../dir/s.sh": "/real/dir/s.sh",
		"/up": "/etc", "/../../real/dir/s.sh": "/real/dir/s.sh",
	} {
		got, err := resolveIn(root, in)
		if err != nil || got != want {
			t.Errorf("resolveIn(%s) = %q, %v; want %s", in, got, err, want)
		}
	}
	if _, err := resolveIn(root, "/loop/x"); err == nil {
		t.Error("symlink loop resolved")
	}
	// "../" out of the root stays at the root: /etc/passwd inside it (absent).
	if got, err := resolveIn(root, "/escape"); err == nil {
		t.Errorf("escape resolved to %q", got)
	}
}

// FuzzMountinfo: the mountinfo and overlay option parsers on arbitrary bytes.
func FuzzMountinfo(f *testing.F) {
	f.Add([]byte("600 500 0:55 / / rw - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w\n"))
	f.Add([]byte("1 2 3 4 5 6 - \n\\\\\\0\n"))
	f.Add([]byte(`x y z / /a\040b rw - overlay o upperdir=\377\,lowerdir=\:`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range parseMountinfo(b) {
			up, lows := overlayDirs(m.super)
			if len(up) > len(m.super) || len(lows) > len(m.super)+1 {
				t.Fatalf("grew: %q %q from %q", up, lows, m.super)
			}
			_ = mountFor([]mountEntry{m}, "/x")
		}
	})
}

// BenchmarkScriptCandidate: the per-exec cost on the pipeline goroutine.
func BenchmarkScriptCandidate(b *testing.B) {
	d := &ScriptDrift{}
	evs := []rules.Event{
		{Type: rules.EventExecve, Container: rules.Container{ID: c1}, Proc: rules.Process{ExePath: "/bin/ls", Exe: "ls", Args: "-l /tmp"}},
		{Type: rules.EventExecve, Container: rules.Container{ID: c1}, Proc: rules.Process{ExePath: "/bin/sh", Exe: "sh", Args: "-c echo hi"}},
		{Type: rules.EventExecve, Container: rules.Container{ID: c1}, Proc: rules.Process{ExePath: "/tmp/x.sh", Exe: "/bin/sh", Args: "./x.sh"}},
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range evs {
			d.Candidate(&evs[i])
		}
	}
}
