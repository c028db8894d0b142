package inventorytest

import (
	"context"
	"io"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// fixed is an extractor that returns a set output. It is a fake on purpose:
// the checks under test must refuse outputs no real extractor gives.
type fixed struct{ out inventory.Output }

func (fixed) Name() string                             { return "test/fixed" }
func (fixed) Version() int                             { return 1 }
func (fixed) Required(string, inventory.FileInfo) bool { return true }
func (f fixed) Extract(context.Context, *inventory.Input) (inventory.Output, error) {
	return f.out, nil
}

func TestCheckOutput(t *testing.T) {
	good := inventory.Package{Name: "a", Version: "1", Location: "x/f", Extractor: "test/fixed"}
	withName := func(mod func(*inventory.Package)) inventory.Output {
		p := good
		mod(&p)
		return inventory.Output{Packages: []inventory.Package{p}}
	}
	tests := []struct {
		name   string
		out    inventory.Output
		size   int
		wantOK bool
	}{
		{"good", inventory.Output{Packages: []inventory.Package{good}, OwnedFiles: map[string]string{"usr/bin/a": "a"}}, 10, true},
		{"empty", inventory.Output{}, 0, true},
		{"no version", withName(func(p *inventory.Package) { p.Version = "" }), 10, false},
		{"no name", withName(func(p *inventory.Package) { p.Name = "" }), 10, false},
		{"other location", withName(func(p *inventory.Package) { p.Location = "x/g" }), 10, false},
		{"other extractor", withName(func(p *inventory.Package) { p.Extractor = "x" }), 10, false},
		{"more packages than bytes", inventory.Output{Packages: []inventory.Package{good, good, good}}, 1, false},
		{"OS without ID", inventory.Output{OS: &inventory.OS{Location: "x/f"}}, 10, false},
		{"OS elsewhere", inventory.Output{OS: &inventory.OS{ID: "debian", Location: "etc/os-release"}}, 10, false},
	}
	for _, bad := range []string{"", ".", "..", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", "a/.."} {
		tests = append(tests, struct {
			name   string
			out    inventory.Output
			size   int
			wantOK bool
		}{"owned " + bad, inventory.Output{OwnedFiles: map[string]string{bad: "a"}}, 10, false})
	}
	tests = append(tests, struct {
		name   string
		out    inventory.Output
		size   int
		wantOK bool
	}{"owner missing", inventory.Output{OwnedFiles: map[string]string{"a": ""}}, 10, false})
	for _, tt := range tests {
		err := CheckOutput(fixed{}, "x/f", tt.size, tt.out)
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: CheckOutput = %v, want ok %v", tt.name, err, tt.wantOK)
		}
	}
}

func TestInput(t *testing.T) {
	calls := 0
	in := CountReaderAt(Executable("bin/x", []byte("hello")), &calls)
	if in.Info.Size != 5 || in.Info.Mode != 0o755 || in.Path != "bin/x" {
		t.Errorf("input %+v", in)
	}
	b, err := io.ReadAll(in.Reader)
	if err != nil || string(b) != "hello" {
		t.Errorf("Reader: %q, %v", b, err)
	}
	for range 2 {
		ra, size, err := in.ReaderAt()
		if err != nil || size != 5 {
			t.Fatalf("ReaderAt: %d, %v", size, err)
		}
		buf := make([]byte, 3)
		if _, err := ra.ReadAt(buf, 2); err != nil || string(buf) != "llo" {
			t.Errorf("ReadAt: %q, %v", buf, err)
		}
	}
	if calls != 2 {
		t.Errorf("%d ReaderAt calls counted, want 2", calls)
	}
}

// recorder notes failures instead of reporting them, so the checks can be
// shown to fail.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Error(...any)          { r.failed = true }
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Logf(string, ...any)   {}

func TestRunCase(t *testing.T) {
	pkg := inventory.Package{Name: "a", Version: "1", Location: "f", Extractor: "test/fixed"}
	e := fixed{out: inventory.Output{Packages: []inventory.Package{pkg}}}
	for _, tt := range []struct {
		c      Case
		failed bool
	}{
		{Case{Name: "ok", In: "xx", Pkgs: 1}, false},
		{Case{Name: "range", In: "xx", MaxPkgs: 3}, false},
		{Case{Name: "too many", In: "xx"}, true},
		{Case{Name: "too few", In: "xx", Pkgs: 2, MaxPkgs: 3}, true},
		{Case{Name: "want error", In: "xx", Pkgs: 1, WantErr: true}, true},
		{Case{Name: "want error text", In: "xx", Pkgs: 1, ErrContains: "boom"}, true},
		{Case{Name: "elsewhere", Path: "g", In: "xx", Pkgs: 1}, true},
		{Case{Name: "own check", In: "xx", Pkgs: 1, Check: func(t testing.TB, _ inventory.Output, _ error) { t.Error("own") }}, true},
	} {
		r := &recorder{TB: t}
		runCase(r, e, "f", tt.c)
		if r.failed != tt.failed {
			t.Errorf("%s: failed = %v, want %v", tt.c.Name, r.failed, tt.failed)
		}
	}
}

func TestClean(t *testing.T) {
	for p, want := range map[string]bool{"a": true, "a/b": true, "a/b/c.txt": true, "..a": true, "a..": true, "": false, "/a": false, "a/../b": false} {
		if got := clean(p); got != want {
			t.Errorf("clean(%q) = %v, want %v", p, got, want)
		}
	}
}
