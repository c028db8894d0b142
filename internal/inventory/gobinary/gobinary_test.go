package gobinary

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/osv-scalibr/semantic"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

const (
	vulnapp   = "testdata/vulnapp-go1.21.0-linux-amd64"
	hello     = "testdata/hello-go1.22rc1-linux-amd64"
	buildOnly = "testdata/vulnapp-buildinfo-only.elf"
	// vulnappSymtab is vulnapp built without -s: it keeps the ELF symbol
	// table that `go tool nm` and govulncheck read.
	vulnappSymtab = "testdata/vulnapp-go1.21.0-linux-amd64-symtab"
)

// ignoreSymbols leaves Package.Symbols out of comparisons of package
// lists; the tests of symbols.go check them.
var ignoreSymbols = cmpopts.IgnoreFields(inventory.Package{}, "Symbols")

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	return inventorytest.ReadFile(t, path)
}

func extract(t testing.TB, path string, data []byte) ([]inventory.Package, error) {
	t.Helper()
	out, err := New().Extract(context.Background(), inventorytest.Executable(path, data))
	return out.Packages, err
}

func golang(name, version, purl string) inventory.Package {
	return inventory.Package{
		Name: name, Version: version, PURL: purl,
		Type: inventory.TypeGolang, Ecosystem: inventory.EcosystemGo,
		Platform: "linux/amd64", Location: "app/bin", Extractor: Name,
	}
}

func TestExtractRealBinaries(t *testing.T) {
	tests := []struct {
		file string
		want []inventory.Package
		// symbols: the binary's function table is readable.
		symbols bool
	}{
		{
			file:    vulnapp,
			symbols: true,
			want: []inventory.Package{
				golang("golang.org/x/net", "0.0.0-20220722155237-a158d28d115b",
					"pkg:golang/golang.org/x/net@v0.0.0-20220722155237-a158d28d115b"),
				golang("golang.org/x/text", "0.3.7", "pkg:golang/golang.org/x/text@v0.3.7"),
				golang("rsc.io/quote", "1.5.2", "pkg:golang/rsc.io/quote@v1.5.2"),
				// go.mod replaces rsc.io/sampler v1.3.0 with v1.99.99: the
				// replacement is what was compiled in.
				golang("rsc.io/sampler", "1.99.99", "pkg:golang/rsc.io/sampler@v1.99.99"),
				golang("stdlib", "1.21.0", "pkg:golang/stdlib@v1.21.0"),
			},
		},
		{
			file:    hello,
			symbols: true,
			want: []inventory.Package{
				golang("stdlib", "1.22.0-rc.1", "pkg:golang/stdlib@v1.22.0-rc.1"),
			},
		},
		{
			// Only the build info section survives; debug/buildinfo reads it
			// all the same.
			file: buildOnly,
			want: []inventory.Package{
				golang("golang.org/x/net", "0.0.0-20220722155237-a158d28d115b",
					"pkg:golang/golang.org/x/net@v0.0.0-20220722155237-a158d28d115b"),
				golang("golang.org/x/text", "0.3.7", "pkg:golang/golang.org/x/text@v0.3.7"),
				golang("rsc.io/quote", "1.5.2", "pkg:golang/rsc.io/quote@v1.5.2"),
				golang("rsc.io/sampler", "1.99.99", "pkg:golang/rsc.io/sampler@v1.99.99"),
				golang("stdlib", "1.21.0", "pkg:golang/stdlib@v1.21.0"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			got, err := extract(t, "app/bin", readFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreSymbols); diff != "" {
				t.Errorf("packages (-want +got):\n%s", diff)
			}
			for _, p := range got {
				if (p.Symbols != nil) != tt.symbols || p.Symbols != got[0].Symbols {
					t.Errorf("%s: symbols %v; want one set shared by every package: %v", p.Name, p.Symbols, tt.symbols)
				}
			}
		})
	}
}

// TestAgreesWithGoVersionM compares the module list with what the real go
// command prints for the same binaries.
func TestAgreesWithGoVersionM(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH: cannot compare with `go version -m`")
	}
	for _, file := range []string{vulnapp, hello} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := exec.Command(goCmd, "version", "-m", file).Output()
			if err != nil {
				t.Fatalf("go version -m %s: %v", file, err)
			}
			var want []string
			var goVersion string
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				switch {
				case goVersion == "" && len(f) == 2:
					goVersion = f[1] // "FILE: go1.21.0"
				case len(f) >= 3 && f[0] == "dep":
					want = append(want, f[1]+"@"+f[2])
				case len(f) >= 3 && f[0] == "=>":
					want[len(want)-1] = f[1] + "@" + f[2]
				}
			}
			std, ok := stdlibVersion(goVersion)
			if !ok {
				t.Fatalf("go version -m printed Go version %q, which does not parse", goVersion)
			}
			want = append(want, "stdlib@v"+std)
			got, err := extract(t, "app/bin", readFile(t, file))
			if err != nil {
				t.Fatal(err)
			}
			var gotMods []string
			for _, p := range got {
				gotMods = append(gotMods, p.Name+"@v"+p.Version)
			}
			if diff := cmp.Diff(want, gotMods); diff != "" {
				t.Errorf("modules (-go version -m +extractor):\n%s", diff)
			}
		})
	}
}

// TestToolchain reads the real go command, which go-vulndb's "toolchain"
// vulnerabilities affect.
func TestToolchain(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH")
	}
	goCmd, err = filepath.EvalSymlinks(goCmd)
	if err != nil {
		t.Fatal(err)
	}
	gv, err := exec.Command(goCmd, "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, ok := stdlibVersion(string(bytes.TrimSpace(gv)))
	if !ok {
		t.Skipf("go command is a development build (%s): no release to report", gv)
	}
	got, err := extract(t, "usr/local/go/bin/go", readFile(t, goCmd))
	if err != nil {
		t.Fatal(err)
	}
	var std, tool string
	for _, p := range got {
		switch p.Name {
		case StdlibName:
			std = p.Version
		case ToolchainName:
			tool = p.Version
		}
	}
	if std != want || tool != want {
		t.Errorf("stdlib %q, toolchain %q; want both %q (packages: %v)", std, tool, want, got)
	}
}

func TestStdlibVersion(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means not a release
	}{
		{"go1.21.3", "1.21.3"},
		{"go1.21.0", "1.21.0"},
		{"go1.21", "1.21.0"},
		{"go1.20", "1.20.0"},
		{"go1.22rc1", "1.22.0-rc.1"},
		{"go1.9beta2", "1.9.0-beta.2"},
		{"go1.20-pre3 cl/474093167 +a813be86df", "1.20.0-pre.3"},
		{"go1.21.0 X:boringcrypto", "1.21.0"},
		{"go1.22.5-bigcorp", "1.22.5"},
		{"go1", "1.0.0"},
		{"devel go1.23-abcdef Tue Jan 2 15:04:05 2024 +0000", ""},
		{"", ""},
		{"go", ""},
		{"go1.", ""},
		{"go1.x", ""},
		{"go1.21.3.4", ""},
		{"go1.21rc", ""},
		{"go1.21.3extra", ""},
		{"1.21.3", ""},
	}
	for _, tt := range tests {
		got, ok := stdlibVersion(tt.in)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("stdlibVersion(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
		}
	}
}

// osvRecord is the part of an OSV record the version check needs.
type osvRecord struct {
	ID       string `json:"id"`
	Affected []struct {
		Package struct {
			Name      string `json:"name"`
			Ecosystem string `json:"ecosystem"`
		} `json:"package"`
		Ranges []struct {
			Type   string              `json:"type"`
			Events []map[string]string `json:"events"`
		} `json:"ranges"`
		EcosystemSpecific struct {
			Imports []struct {
				GOOS   []string `json:"goos"`
				GOARCH []string `json:"goarch"`
			} `json:"imports"`
		} `json:"ecosystem_specific"`
	} `json:"affected"`
}

// otherPlatform reports records whose affected code exists only on other
// operating systems or architectures than linux/amd64. govulncheck reads
// GOOS and GOARCH from the binary and skips them, and so does Bulwark's
// matcher (internal/vulndb) with Package.Platform: this test, which
// evaluates versions alone, leaves them out itself.
func (r osvRecord) otherPlatform() bool {
	for _, a := range r.Affected {
		imps := a.EcosystemSpecific.Imports
		if len(imps) == 0 {
			return false
		}
		for _, imp := range imps {
			if (len(imp.GOOS) == 0 || slices.Contains(imp.GOOS, "linux")) &&
				(len(imp.GOARCH) == 0 || slices.Contains(imp.GOARCH, "amd64")) {
				return false
			}
		}
	}
	return true
}

// affects evaluates an OSV SEMVER range the way the OSV schema defines it,
// with the comparator the vulndb matcher uses.
func (r osvRecord) affects(t *testing.T, p inventory.Package) bool {
	t.Helper()
	v, err := semantic.Parse(p.Version, p.Ecosystem)
	if err != nil {
		t.Fatalf("%s: version %q does not parse: %v", r.ID, p.Version, err)
	}
	cmpTo := func(s string) int {
		c, err := v.CompareStr(s)
		if err != nil {
			t.Fatalf("%s: compare %q with %q: %v", r.ID, p.Version, s, err)
		}
		return c
	}
	for _, a := range r.Affected {
		if a.Package.Name != p.Name || a.Package.Ecosystem != p.Ecosystem {
			continue
		}
		for _, rg := range a.Ranges {
			in := false
			for _, ev := range rg.Events {
				if s, ok := ev["introduced"]; ok && (s == "0" || cmpTo(s) >= 0) {
					in = true
				}
				if s, ok := ev["fixed"]; ok && cmpTo(s) >= 0 {
					in = false
				}
			}
			if in {
				return true
			}
		}
	}
	return false
}

// TestVersionsMatchRealOSVRecords checks the version spelling decision: the
// stored versions, compared with osv-scalibr/semantic against real
// go-vulndb records, give the answers govulncheck gives.
func TestVersionsMatchRealOSVRecords(t *testing.T) {
	files, err := filepath.Glob("testdata/osv/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no OSV records in testdata/osv: %v", err)
	}
	var records []osvRecord
	for _, f := range files {
		var r osvRecord
		if err := json.Unmarshal(readFile(t, f), &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		records = append(records, r)
	}
	tests := []struct {
		file string
		want []string
	}{
		// Not affected: GO-2021-0113 (x/text fixed in 0.3.7), GO-2021-0238
		// (x/net fixed in 2021), GO-2023-1987 (fixed in 1.21.0-rc.4, before
		// 1.21.0), GO-2024-2824 (introduced in 1.22.0).
		{vulnapp, []string{"GO-2022-1059", "GO-2023-1988", "GO-2023-2041", "GO-2024-2598"}},
		// go1.22rc1 is after "1.22.0-0", so 1.22 vulnerabilities apply,
		// and after 1.21.x fixes, so GO-2023-2041 does not.
		{hello, []string{"GO-2024-2598", "GO-2024-2824"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			pkgs, err := extract(t, "app/bin", readFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range records {
				for _, p := range pkgs {
					if r.affects(t, p) {
						got = append(got, r.ID)
						break
					}
				}
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("affecting records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		path string
		info inventory.FileInfo
		want bool
	}{
		{"usr/local/bin/app", inventory.FileInfo{Size: 5 << 20, Mode: 0o755}, true},
		{"app", inventory.FileInfo{Size: 5 << 20, Mode: 0o700}, true},
		{"usr/share/grafana/bin/grafana", inventory.FileInfo{Size: 5 << 20, Mode: 0o755}, true},
		{"usr/lib/libgo.so", inventory.FileInfo{Size: 5 << 20, Mode: 0o755}, true},
		{"usr/local/bin/app", inventory.FileInfo{Size: 5 << 20, Mode: 0o644}, false},
		{"usr/local/bin/app", inventory.FileInfo{Size: 5 << 20, Mode: fs.ModeSymlink | 0o777}, false},
		{"usr/local/bin/app", inventory.FileInfo{Size: 5 << 20, Mode: fs.ModeDir | 0o755}, false},
		{"usr/local/bin/app", inventory.FileInfo{Size: 10, Mode: 0o755}, false},
		{"usr/local/bin/app", inventory.FileInfo{Size: MaxFileSize + 1, Mode: 0o755}, false},
		{"var/lib/dpkg/info/bash.postinst", inventory.FileInfo{Size: 5000, Mode: 0o755}, false},
		{"usr/share/doc/x/examples/run", inventory.FileInfo{Size: 5000, Mode: 0o755}, false},
		{"usr/local/bin/entrypoint.sh", inventory.FileInfo{Size: 5000, Mode: 0o755}, false},
		{"opt/app/tool.PY", inventory.FileInfo{Size: 5000, Mode: 0o755}, false},
		{"opt/app.d/tool", inventory.FileInfo{Size: 5000, Mode: 0o755}, true},
	}
	e := New()
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.info); got != tt.want {
			t.Errorf("Required(%q, %v) = %v; want %v", tt.path, tt.info, got, tt.want)
		}
	}
}

// TestCheapRejection checks that files that are not executables are turned
// away from their first bytes, without buffering them.
func TestCheapRejection(t *testing.T) {
	for _, data := range [][]byte{
		[]byte("#!/bin/sh\nexec /usr/bin/app \"$@\"\n"),
		[]byte("PK\x03\x04not an executable"),
		[]byte("\x7fEL"), // shorter than the magic
		{},
	} {
		calls := 0
		out, err := New().Extract(context.Background(), inventorytest.CountReaderAt(inventorytest.Executable("bin/x", data), &calls))
		if err != nil || len(out.Packages) != 0 || calls != 0 {
			t.Errorf("%q: %d packages, err %v, ReaderAt called %d times; want none", data, len(out.Packages), err, calls)
		}
	}
}

// TestNotGo checks that executables without Go build info yield nothing
// and no error: most binaries in an image are not Go.
func TestNotGo(t *testing.T) {
	data := readFile(t, hello)
	i := bytes.Index(data, []byte("\xff Go buildinf:"))
	if i < 0 {
		t.Fatal("build info magic not found in the test binary")
	}
	noMagic := slices.Clone(data)
	copy(noMagic[i:], "\xff No buildinf:")
	cases := map[string][]byte{
		"ELF without build info": noMagic,
		"ELF magic then garbage": append([]byte("\x7fELF"), bytes.Repeat([]byte{0xA5}, 4096)...),
		"MZ then text":           []byte("MZ this is a text file that starts like a PE file\n"),
		"Mach-O magic only":      []byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01"),
	}
	for name, data := range cases {
		got, err := extract(t, "bin/x", data)
		if err != nil || len(got) != 0 {
			t.Errorf("%s: packages %v, err %v; want none", name, got, err)
		}
	}
}

// TestCorruptBuildInfo checks that a Go binary whose module information
// does not parse is reported, not silently dropped.
func TestCorruptBuildInfo(t *testing.T) {
	data := slices.Clone(readFile(t, vulnapp))
	// The linker also keeps a copy of the module text in read-only data
	// for runtime/debug; damage the one in the build info blob.
	magic := bytes.Index(data, []byte("\xff Go buildinf:"))
	i := bytes.Index(data[max(magic, 0):], []byte("\t(devel)\t"))
	if magic < 0 || i < 0 {
		t.Fatal("main module line not found in the build info of the test binary")
	}
	copy(data[magic+i:], "\t(de\tl)\t") // one column too many
	_, err := extract(t, "bin/vulnapp", data)
	if err == nil || !strings.Contains(err.Error(), "bin/vulnapp") {
		t.Errorf("err = %v; want an error naming the file", err)
	}
}

// TestHostileInputs feeds damaged copies of a real binary. None may panic,
// and none may yield packages other than the intact binary's: a damaged
// file gives the true list, nothing, or an error.
func TestHostileInputs(t *testing.T) {
	full := readFile(t, vulnapp)
	want, err := extract(t, "bin/x", full)
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		name string
		data []byte
	}
	add := func(name string, data []byte) {
		cases = append(cases, struct {
			name string
			data []byte
		}{name, data})
	}
	for _, n := range []int{16, 52, 64, 1000, 4096, len(full) / 3, len(full) / 2, len(full) - 1} {
		add("truncated to "+strconv.Itoa(n), full[:n])
	}
	// Garbage over the section header table (its offset is at 0x28 in an
	// ELF64 header) and over the program headers.
	shoff := int(uint64(full[0x28]) | uint64(full[0x29])<<8 | uint64(full[0x2a])<<16 | uint64(full[0x2b])<<24)
	garbage := slices.Clone(full)
	for i := shoff; i < len(garbage) && i < shoff+64*20; i++ {
		garbage[i] = byte(i * 7)
	}
	add("garbage section headers", garbage)
	phdrs := slices.Clone(full)
	for i := 64; i < 64+56*6; i++ {
		phdrs[i] = 0xff
	}
	add("garbage program headers", phdrs)
	huge := slices.Clone(full)
	copy(huge[0x3c:], []byte{0xff, 0xff}) // e_shnum = 65535
	add("65535 sections claimed", huge)

	for _, c := range cases {
		got, err := extract(t, "bin/x", c.data)
		if err == nil && len(got) != 0 {
			if diff := cmp.Diff(want, got, ignoreSymbols); diff != "" {
				t.Errorf("%s: packages differ from the intact binary's (-want +got):\n%s", c.name, diff)
			}
			// Symbols too are the true set or none: a function table cut
			// short must not yield a partial set that hides functions.
			if s := got[0].Symbols; s != nil && !s.Equal(want[0].Symbols) {
				t.Errorf("%s: symbols %v; want %v or none", c.name, s, want[0].Symbols)
			}
		}
	}
}

func TestCancelled(t *testing.T) {
	inventorytest.CheckCancelled(t, New(), "bin/x", readFile(t, hello))
}

func FuzzGoBinary(f *testing.F) {
	seed := readFile(f, buildOnly)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("MZ\x90\x00"))
	f.Add([]byte("\xca\xfe\xba\xbe\x00\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Names, versions and locations are checked by inventorytest.Fuzz.
		out, err := inventorytest.Fuzz(t, New(), "bin/x", data)
		if err != nil {
			return
		}
		for _, p := range out.Packages {
			if !strings.HasPrefix(p.PURL, "pkg:golang/") {
				t.Fatalf("malformed package %+v", p)
			}
		}
	})
}

func BenchmarkGoBinary(b *testing.B) {
	inventorytest.Benchmark(b, New(), "bin/vulnapp", readFile(b, vulnapp), inventorytest.Packages(5))
}

// vulndbModule is the Go vulnerability database the govulncheck results in
// testdata/govulncheck were computed from.
const vulndbModule = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"

// TestAgreesWithGovulncheck evaluates every record of the Go vulnerability
// database against the extractor's packages with osv-scalibr/semantic, and
// compares the affecting IDs with what govulncheck found in the same
// binaries from the same records. testdata/govulncheck/*.txt were made with
// govulncheck v1.3.0 on an index of the module's data/osv built by its
// cmd/indexdb:
//
//	govulncheck -mode binary -scan module -db file://DB -format json BINARY
//
// (the IDs of the "finding" messages, sorted). Records for other
// platforms are left out, as govulncheck leaves them out for this
// linux/amd64 binary.
func TestAgreesWithGovulncheck(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4,789 OSV records")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH: cannot fetch " + vulndbModule)
	}
	cmd := exec.Command(goCmd, "mod", "download", "-json", vulndbModule)
	cmd.Dir = t.TempDir()
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go mod download %s failed (no module proxy?): %v", vulndbModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download -json: %v (%s)", err, out)
	}
	files, err := filepath.Glob(filepath.Join(mod.Dir, "data", "osv", "*.json"))
	if err != nil || len(files) < 4000 {
		t.Fatalf("%d records in %s: %v", len(files), mod.Dir, err)
	}
	var records []osvRecord
	for _, f := range files {
		var r struct {
			osvRecord
			Withdrawn string `json:"withdrawn"`
		}
		if err := json.Unmarshal(readFile(t, f), &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if r.Withdrawn == "" && !r.otherPlatform() {
			records = append(records, r.osvRecord)
		}
	}
	for _, tt := range []struct{ binary, golden string }{
		{vulnapp, "testdata/govulncheck/vulnapp-go1.21.0.txt"},
		{hello, "testdata/govulncheck/hello-go1.22rc1.txt"},
	} {
		t.Run(filepath.Base(tt.binary), func(t *testing.T) {
			pkgs, err := extract(t, "app/bin", readFile(t, tt.binary))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range records {
				for _, p := range pkgs {
					if r.affects(t, p) {
						got = append(got, r.ID)
						break
					}
				}
			}
			slices.Sort(got)
			want := strings.Fields(string(readFile(t, tt.golden)))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("affecting records (-govulncheck +extractor with semantic):\n%s", diff)
			}
		})
	}
}
