package rustbinary

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

const (
	rustapp = "testdata/rustapp-linux-amd64"
	depOnly = "testdata/dep-v0-only.elf"
)

func extract(data []byte) ([]inventory.Package, error) {
	out, err := New().Extract(context.Background(), inventorytest.Executable("usr/bin/rustapp", data))
	return out.Packages, err
}

func zlibBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withSection returns a copy of the ELF64 little-endian file base whose
// .dep-v0 section holds content: the bytes are appended and the section
// header is pointed at them. It lets hostile section contents be tested
// inside a real executable.
func withSection(t testing.TB, base, content []byte) []byte {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	idx := slices.IndexFunc(f.Sections, func(s *elf.Section) bool { return s.Name == sectionName })
	if idx < 0 {
		t.Fatal("test binary has no .dep-v0 section")
	}
	shoff := binary.LittleEndian.Uint64(base[0x28:])
	shentsize := uint64(binary.LittleEndian.Uint16(base[0x3a:]))
	hdr := shoff + uint64(idx)*shentsize
	out := append(slices.Clone(base), content...)
	binary.LittleEndian.PutUint64(out[hdr+0x18:], uint64(len(base)))    // sh_offset
	binary.LittleEndian.PutUint64(out[hdr+0x20:], uint64(len(content))) // sh_size
	return out
}

func wantCrate(name, version, source string) inventory.Package {
	p := inventory.Package{
		Name: name, Version: version, Type: inventory.TypeCargo,
		Location: "usr/bin/rustapp", Extractor: Name,
	}
	if source == "crates.io" {
		p.Ecosystem = inventory.EcosystemCrates
		p.PURL = "pkg:cargo/" + name + "@" + version
	}
	return p
}

func indirect(p inventory.Package) inventory.Package { p.Indirect = true; return p }

func TestExtractRealBinary(t *testing.T) {
	build := wantCrate("cc", "1.0.72", "crates.io")
	build.Dev = true
	want := []inventory.Package{
		indirect(wantCrate("aho-corasick", "0.7.18", "crates.io")),
		build,
		wantCrate("internal-util", "1.0.0", "registry"),
		indirect(wantCrate("memchr", "2.4.1", "crates.io")),
		wantCrate("regex", "1.5.4", "crates.io"),
		indirect(wantCrate("regex-syntax", "0.6.25", "crates.io")),
		wantCrate("rustapp", "0.1.0", "local"),
		wantCrate("smallvec", "1.6.0", "crates.io"),
		wantCrate("tinygit", "0.2.0", "git"),
	}
	for _, file := range []string{rustapp, depOnly} {
		got, err := extract(inventorytest.ReadFile(t, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: packages (-want +got):\n%s", file, diff)
		}
	}
}

// TestSectionMatchesSource checks the committed binary against the JSON it
// was built from, so a stale fixture is noticed.
func TestSectionMatchesSource(t *testing.T) {
	f, err := elf.Open(rustapp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := readSection(f.Section(sectionName))
	if err != nil {
		t.Fatal(err)
	}
	src := inventorytest.ReadFile(t, "testdata/src/dep-v0.json")
	want, err := decode(zlibBytes(t, src))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("section differs from testdata/src/dep-v0.json; run testdata/build.sh (-src +binary):\n%s", diff)
	}
	if info.Format != 1 {
		t.Errorf("format = %d; want 1", info.Format)
	}
}

func TestNoSection(t *testing.T) {
	data := slices.Clone(inventorytest.ReadFile(t, rustapp))
	// Rename the section in the section name table: the same executable,
	// as a plain `cargo build` would leave it.
	i := bytes.Index(data, []byte(sectionName+"\x00"))
	if i < 0 {
		t.Fatal("section name not found")
	}
	copy(data[i:], ".xep-v0")
	got, err := extract(data)
	if err != nil || len(got) != 0 {
		t.Errorf("packages %v, err %v; want none", got, err)
	}
}

func TestCheapRejection(t *testing.T) {
	for _, data := range [][]byte{
		[]byte("#!/bin/sh\necho hi\n"),
		[]byte("MZ\x90\x00 a PE file is not read"),
		[]byte("\x7fE"),
		{},
	} {
		calls := 0
		out, err := New().Extract(context.Background(), inventorytest.CountReaderAt(inventorytest.Executable("bin/x", data), &calls))
		if err != nil || len(out.Packages) != 0 || calls != 0 {
			t.Errorf("%q: %d packages, err %v, ReaderAt called %d times; want none", data, len(out.Packages), err, calls)
		}
	}
}

func TestHostileSections(t *testing.T) {
	base := inventorytest.ReadFile(t, rustapp)
	// in is the real executable with content as its .dep-v0 section.
	in := func(content []byte) string { return string(withSection(t, base, content)) }
	bomb := zlibBytes(t, bytes.Repeat([]byte(" "), MaxDepInfoSize+1))
	namesFile := func(t testing.TB, _ inventory.Output, err error) {
		if err != nil && !strings.Contains(err.Error(), "usr/bin/rustapp") {
			t.Errorf("err = %v; want it naming the file", err)
		}
	}
	cases := []inventorytest.Case{
		{Name: "not zlib", In: in([]byte(`{"packages":[]}`)), ErrIs: ErrMalformed},
		{Name: "empty", In: in(nil), ErrIs: ErrMalformed},
		{Name: "zlib of non-JSON", In: in(zlibBytes(t, []byte("not json"))), ErrIs: ErrMalformed},
		{Name: "truncated zlib", In: in(zlibBytes(t, inventorytest.ReadFile(t, "testdata/src/dep-v0.json"))[:100]), ErrIs: ErrMalformed},
		{Name: "zlib bomb", In: in(bomb), ErrIs: inventory.ErrTooLarge},
		{Name: "package without version", In: in(zlibBytes(t, []byte(`{"packages":[{"name":"a","source":"crates.io"}]}`))), ErrIs: ErrMalformed},
		{Name: "wrong types", In: in(zlibBytes(t, []byte(`{"packages":[{"name":1,"version":[]}]}`))), ErrIs: ErrMalformed},
		{Name: "dependency indices out of range", Pkgs: 1, In: in(zlibBytes(t, []byte(
			`{"packages":[{"name":"a","version":"1.0.0","source":"crates.io","dependencies":[-1,5,1000000000000],"root":true}]}`)))},
		{Name: "two roots and a cycle", Pkgs: 2, In: in(zlibBytes(t, []byte(
			`{"packages":[{"name":"a","version":"1.0.0","source":"local","dependencies":[1],"root":true},`+
				`{"name":"b","version":"2.0.0","source":"local","dependencies":[0],"root":true}]}`)))},
		{Name: "unknown fields and format", Pkgs: 1, In: in(zlibBytes(t, []byte(
			`{"packages":[{"name":"a","version":"1.0.0","source":"sparse+https://x","features":["std"]}],"format":8,"new":{}}`)))},
		{Name: "no packages", In: in(zlibBytes(t, []byte(`{}`)))},
	}
	for i := range cases {
		cases[i].Check = namesFile
	}
	inventorytest.RunHostile(t, New(), "usr/bin/rustapp", cases)
}

func TestSectionSizeBound(t *testing.T) {
	data := withSection(t, inventorytest.ReadFile(t, rustapp), []byte("x"))
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	idx := slices.IndexFunc(f.Sections, func(s *elf.Section) bool { return s.Name == sectionName })
	hdr := binary.LittleEndian.Uint64(data[0x28:]) + uint64(idx)*uint64(binary.LittleEndian.Uint16(data[0x3a:]))
	binary.LittleEndian.PutUint64(data[hdr+0x20:], 1<<40) // a 1 TiB section in a small file
	if _, err := extract(data); !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("err = %v; want ErrTooLarge", err)
	}
}

// TestDamagedFiles feeds damaged copies of the real executable: no panic,
// and either the intact file's packages, nothing, or an error.
func TestDamagedFiles(t *testing.T) {
	full := inventorytest.ReadFile(t, rustapp)
	want, err := extract(full)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{}
	for _, n := range []int{16, 64, 4096, len(full) / 2, len(full) - 300, len(full) - 1} {
		cases["truncated to "+strconv.Itoa(n)] = full[:n]
	}
	shoff := int(binary.LittleEndian.Uint64(full[0x28:]))
	garbage := slices.Clone(full)
	for i := shoff; i < len(garbage); i++ {
		garbage[i] = byte(i*31 + 7)
	}
	cases["garbage section headers"] = garbage
	strtab := slices.Clone(full)
	copy(strtab[0x3e:], []byte{0xff, 0x7f}) // e_shstrndx out of range
	cases["bad section name table index"] = strtab
	for name, data := range cases {
		got, err := extract(data)
		if err == nil && len(got) != 0 {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: packages differ from the intact file's (-want +got):\n%s", name, diff)
			}
		}
	}
}

func TestRequired(t *testing.T) {
	tests := []struct {
		path string
		info inventory.FileInfo
		want bool
	}{
		{"usr/bin/rg", inventory.FileInfo{Size: 4 << 20, Mode: 0o755}, true},
		{"usr/bin/rg", inventory.FileInfo{Size: 4 << 20, Mode: 0o644}, false},
		{"usr/bin/rg", inventory.FileInfo{Size: 4 << 20, Mode: fs.ModeSymlink | 0o777}, false},
		{"usr/bin/rg", inventory.FileInfo{Size: 8, Mode: 0o755}, false},
		{"usr/bin/rg", inventory.FileInfo{Size: MaxFileSize + 1, Mode: 0o755}, false},
		{"var/lib/dpkg/info/ripgrep.postinst", inventory.FileInfo{Size: 4000, Mode: 0o755}, false},
		{"opt/tool/run.sh", inventory.FileInfo{Size: 4000, Mode: 0o755}, false},
	}
	e := New()
	for _, tt := range tests {
		if got := e.Required(tt.path, tt.info); got != tt.want {
			t.Errorf("Required(%q, %v) = %v; want %v", tt.path, tt.info, got, tt.want)
		}
	}
}

func TestCancelled(t *testing.T) {
	inventorytest.CheckCancelled(t, New(), "bin/x", inventorytest.ReadFile(t, rustapp))
}

// FuzzCargoAuditable feeds whole files: ELF parsing and section decoding.
func FuzzCargoAuditable(f *testing.F) {
	seed := inventorytest.ReadFile(f, depOnly)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte("\x7fELF\x02\x01\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Names and versions are checked by inventorytest.Fuzz.
		out, err := inventorytest.Fuzz(t, New(), "bin/x", data)
		if err != nil {
			return
		}
		for _, p := range out.Packages {
			if p.Type != inventory.TypeCargo {
				t.Fatalf("malformed package %+v", p)
			}
		}
	})
}

// FuzzCargoAuditableSection feeds section contents (zlib and JSON), which
// whole-file fuzzing reaches only rarely.
func FuzzCargoAuditableSection(f *testing.F) {
	f.Add(zlibBytes(f, inventorytest.ReadFile(f, "testdata/src/dep-v0.json")))
	f.Add(zlibBytes(f, []byte(`{"packages":[{"name":"a","version":"1","source":"crates.io","dependencies":[0],"root":true}]}`)))
	f.Add([]byte("x\x9c\x03\x00\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, content []byte) {
		info, err := decode(content)
		if err != nil {
			return
		}
		if got := packages(info, "bin/x"); len(got) != len(info.Packages) {
			t.Fatalf("%d packages from %d crates", len(got), len(info.Packages))
		}
	})
}

func BenchmarkCargoAuditable(b *testing.B) {
	data := inventorytest.ReadFile(b, rustapp)
	inventorytest.Benchmark(b, New(), "usr/bin/rustapp", data, inventorytest.Packages(9))
}
