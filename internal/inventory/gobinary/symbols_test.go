package gobinary

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/binary"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

func symbolsOf(t testing.TB, file string) *inventory.Symbols {
	t.Helper()
	pkgs, err := extract(t, "app/bin", readFile(t, file))
	if err != nil || len(pkgs) == 0 {
		t.Fatalf("%s: %d packages, err %v", file, len(pkgs), err)
	}
	return pkgs[0].Symbols
}

// TestSymbolsRealBinary checks the function set of the real test binary
// against facts read from its sources and its symbol table.
func TestSymbolsRealBinary(t *testing.T) {
	s := symbolsOf(t, vulnapp)
	if s == nil {
		t.Fatal("no symbols read from a stripped Go 1.21 ELF binary")
	}
	// -s -w removes the ELF symbol table, not the function table the
	// runtime needs: the stripped binary yields the same set.
	if full := symbolsOf(t, vulnappSymtab); !s.Equal(full) {
		t.Errorf("stripped binary: %v; with symbol table: %v", s, full)
	}
	for _, c := range []struct {
		pkg, sym string
		want     bool
	}{
		{"golang.org/x/text/language", "ParseAcceptLanguage", true}, // called by main
		{"golang.org/x/net/html", "Parse", true},                    // called by main
		{"golang.org/x/net/html", "Tokenizer.Next", true},           // a pointer method: "(*Tokenizer).Next"
		{"golang.org/x/text/internal/language", "Parse", true},      // called by language.ParseAcceptLanguage
		{"example.com/vulnapp", "main", true},                       // "main.main", named by the main package's path
		// quote.Hello is inlined into main.main: no symbol of its own
		// (`go tool nm` lists no rsc.io/quote function), yet present.
		{"rsc.io/quote", "Hello", true},
		{"golang.org/x/net/html", "Render", false},       // never called: removed by the linker
		{"golang.org/x/text/language", "Parse", true},    // inlined only: nm does not list it either
		{"golang.org/x/text/language", "Compose", false}, // never called
		{"golang.org/x/net/html", "Next", false},         // a method is not a function
		{"main", "main", false},
	} {
		if got := s.HasFunc(c.pkg, c.sym); got != c.want {
			t.Errorf("HasFunc(%q, %q) = %v, want %v", c.pkg, c.sym, got, c.want)
		}
	}
	for pkg, want := range map[string]bool{
		"golang.org/x/net/html": true, "rsc.io/quote": true, "fmt": true,
		"golang.org/x/net/http2": false, "golang.org/x/net": false,
	} {
		if got := s.HasPackage(pkg); got != want {
			t.Errorf("HasPackage(%q) = %v, want %v", pkg, got, want)
		}
	}
	for mod, want := range map[string]bool{
		"golang.org/x/net": true, "golang.org/x/text": true, "rsc.io/quote": true,
		// rsc.io/sampler is replaced by another version of itself: its
		// name stays.
		"rsc.io/sampler": true, "stdlib": true, "example.com/vulnapp": true,
		"golang.org/x/crypto": false, "rsc.io": false,
	} {
		if got := s.HasModule(mod); got != want {
			t.Errorf("HasModule(%q) = %v, want %v", mod, got, want)
		}
	}
}

// TestSymbolsAgreeWithGoToolNm: every function symbol `go tool nm` lists
// in the binary with a symbol table is in the set read from the function
// table (which also has the inlined functions nm cannot see).
func TestSymbolsAgreeWithGoToolNm(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH: cannot compare with `go tool nm`")
	}
	out, err := exec.Command(goCmd, "tool", "nm", vulnappSymtab).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	s := symbolsOf(t, vulnappSymtab)
	bi, err := buildinfo.ReadFile(vulnappSymtab)
	if err != nil {
		t.Fatal(err)
	}
	r := newModuleResolver(bi)
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "  49a900 T golang.org/x/net/html.(*Tokenizer).Next"
		f := strings.SplitN(strings.TrimSpace(sc.Text()), " ", 3)
		if len(f) != 3 || (f[1] != "T" && f[1] != "t") {
			continue
		}
		// The symbol table marks assembly functions with their ABI
		// ("runtime.memmove.abi0"); the function table does not. The
		// text section's bounds are symbols, not functions.
		name := strings.TrimSuffix(f[2], ".abi0")
		if name == "runtime.text" || name == "runtime.etext" {
			continue
		}
		pkg, recv, base, ok := splitFuncName(name)
		if !ok {
			continue
		}
		if pkg == "main" {
			pkg = bi.Path
		}
		pkg, _ = r.resolve(pkg)
		sym := base
		if recv != "" {
			sym = recv + "." + base
		}
		checked++
		if !s.HasFunc(pkg, sym) {
			t.Errorf("nm lists %s (%s %s), missing from the set", f[2], pkg, sym)
		}
	}
	if checked < 1500 || s.Len() < checked {
		t.Errorf("checked %d nm functions against a set of %d", checked, s.Len())
	}
}

func TestSplitFuncName(t *testing.T) {
	type split struct{ Pkg, Recv, Base string }
	for name, want := range map[string]*split{
		"golang.org/x/net/html.Parse":             {"golang.org/x/net/html", "", "Parse"},
		"golang.org/x/net/html.(*Tokenizer).Next": {"golang.org/x/net/html", "Tokenizer", "Next"},
		"golang.org/x/net/html.Tokenizer.Raw":     {"golang.org/x/net/html", "Tokenizer", "Raw"},
		"gopkg.in/yaml%2ev2.Unmarshal":            {"gopkg.in/yaml%2ev2", "", "Unmarshal"},
		"go.uber.org/zap.(*Logger).Info":          {"go.uber.org/zap", "Logger", "Info"},
		"main.main":                               {"main", "", "main"},
		"fmt.Println":                             {"fmt", "", "Println"},
		// Closures and methods of generic value types split oddly in
		// debug/gosym; govulncheck keeps its splits, and so does Bulwark,
		// to name the same symbols.
		"net/http.(*conn).serve.func1":                          {"net/http", "conn).serve", "func1"},
		"sync/atomic.(*Pointer[go.shape.interface {}]).Load":    {"sync/atomic", "Pointer[go.shape.interface {}]", "Load"},
		"slices.Sort[go.shape.[]uint64,go.shape.uint64]":        {"slices", "", "Sort[go.shape.[]uint64,go.shape.uint64]"},
		"example.com/m.Map[go.shape.struct { a/b.c int }].Keys": {"example.com/m", "Map[go.shape.struct { a/b.c int }]", "go.shape.struct { a/b.c int }].Keys"},
		"example.com/m.(*Map[go.shape.int]).Keys":               {"example.com/m", "Map[go.shape.int]", "Keys"},
		"type:.eq.golang.org/x/net/html.Attribute":              nil,
		"type:.eq.[6]internal/cpu.option":                       nil,
		"type..hash.main.T":                                     nil,
		"go:buildid":                                            nil,
		"runtime":                                               nil,
		"":                                                      nil,
		".x":                                                    nil,
	} {
		pkg, recv, base, ok := splitFuncName(name)
		var got *split
		if ok {
			got = &split{pkg, recv, base}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("splitFuncName(%q) (-want +got):\n%s", name, diff)
		}
	}
}

func TestModuleResolver(t *testing.T) {
	bi := &debug.BuildInfo{
		Path: "example.com/app/cmd/app",
		Main: debug.Module{Path: "example.com/app"},
		Deps: []*debug.Module{
			{Path: "example.com/lib", Version: "v1.0.0"},
			{Path: "example.com/lib/v2", Version: "v2.0.0"},
			{Path: "example.com/old", Version: "v1.0.0", Replace: &debug.Module{Path: "example.com/fork", Version: "v1.0.1"}},
			{Path: "example.com/local", Version: "v1.0.0", Replace: &debug.Module{Path: "../local"}},
		},
	}
	r := newModuleResolver(bi)
	for pkg, want := range map[string][2]string{
		"example.com/app/cmd/app":  {"example.com/app/cmd/app", "example.com/app"},
		"example.com/lib":          {"example.com/lib", "example.com/lib"},
		"example.com/lib/sub":      {"example.com/lib/sub", "example.com/lib"},
		"example.com/lib/v2/sub":   {"example.com/lib/v2/sub", "example.com/lib/v2"},
		"example.com/library":      {"example.com/library", ""}, // a prefix, not a path element
		"example.com/old/x":        {"example.com/fork/x", "example.com/fork"},
		"example.com/local/x":      {"example.com/local/x", "example.com/local"},
		"net/http":                 {"net/http", "stdlib"},
		"vendor/golang.org/x/net":  {"vendor/golang.org/x/net", "stdlib"},
		"github.com/unknown/thing": {"github.com/unknown/thing", ""},
	} {
		pkg2, mod := r.resolve(pkg)
		if got := [2]string{pkg2, mod}; got != want {
			t.Errorf("resolve(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func TestPlatform(t *testing.T) {
	set := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	for _, c := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{set("GOOS", "linux", "GOARCH", "amd64", "GOAMD64", "v1"), "linux/amd64"},
		{set("GOARCH", "arm", "GOARM", "7", "GOOS", "linux"), "linux/arm"},
		{set("GOOS", "windows"), ""},
		{set(), ""},
		{set("GOOS", "linux/evil", "GOARCH", "amd64"), ""},
	} {
		if got := platform(c.bi); got != c.want {
			t.Errorf("platform(%v) = %q, want %q", c.bi.Settings, got, c.want)
		}
	}
}

// pclntabHeader builds a Go 1.20 pclntab header whose function name table
// spans [start, end).
func pclntabHeader(start, end uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, go120Magic)
	b = append(b, 0, 0, 1, 8)
	for _, w := range []uint64{1, 1, 0, start, end, end, end, end} {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

func TestFuncNameTabHostile(t *testing.T) {
	names := []byte("main.main\x00fmt.Println\x00")
	good := append(pclntabHeader(72, 72+uint64(len(names))), names...)
	if got := funcNameTab(bytes.NewReader(good), uint64(len(good))); !bytes.Equal(got, names) {
		t.Fatalf("well-formed table: %q, want %q", got, names)
	}
	for name, tab := range map[string][]byte{
		"empty":              nil,
		"short":              good[:7],
		"end past the table": pclntabHeader(72, 1<<40),
		"start after end":    append(pclntabHeader(80, 72), names...),
		"huge table claimed": pclntabHeader(0, maxFuncNameTab+1),
		"Go 1.2 magic":       append(binary.LittleEndian.AppendUint32(nil, 0xfffffffb), good[4:]...),
		"bad pointer size":   append(append(bytes.Clone(good[:7]), 3), good[8:]...),
		"non-zero padding":   append(append(bytes.Clone(good[:4]), 1), good[5:]...),
	} {
		if got := funcNameTab(bytes.NewReader(tab), uint64(len(tab))); got != nil {
			t.Errorf("%s: read %d bytes, want none", name, len(got))
		}
	}
}

// FuzzFuncNameTab feeds arbitrary pclntab sections: reading and splitting
// the names must neither panic nor read beyond the bound.
func FuzzFuncNameTab(f *testing.F) {
	names := []byte("main.main\x00golang.org/x/net/html.(*Tokenizer).Next\x00sync/atomic.(*Pointer[go.shape.int]).Load\x00")
	f.Add(append(pclntabHeader(72, 72+uint64(len(names))), names...))
	f.Add(pclntabHeader(72, 80))
	f.Add([]byte("\xf1\xff\xff\xff\x00\x00\x01\x04"))
	f.Fuzz(func(t *testing.T, tab []byte) {
		got := funcNameTab(bytes.NewReader(tab), uint64(len(tab)))
		if len(got) > len(tab) {
			t.Fatalf("read %d bytes from a %d-byte table", len(got), len(tab))
		}
		var b inventory.SymbolsBuilder
		for _, n := range bytes.Split(got, []byte{0}) {
			if pkg, recv, base, ok := splitFuncName(string(n)); ok {
				if pkg == "" {
					t.Fatalf("%q: empty package accepted", n)
				}
				b.Add(pkg, recv, base)
			}
		}
		b.Build()
	})
}
