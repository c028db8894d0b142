package gobinary

import (
	"debug/elf"
	"debug/macho"
	"encoding/binary"
	"io"
	"net/url"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// maxFuncNameTab bounds the function name table read from one binary. The
// largest Go programs (kubelet, a full Kubernetes API server) have tables of
// a few MiB; beyond the bound the binary is inventoried without symbols.
const maxFuncNameTab = 64 << 20

// Magic numbers of the Go pclntab headers whose layout readSymbols knows
// (runtime/symtab.go): each one starts with magic, two zero pad bytes, the
// instruction size quantum, the pointer size, then pointer-sized words.
const (
	go116Magic = 0xfffffffa // Go 1.16, 1.17
	go118Magic = 0xfffffff0 // Go 1.18, 1.19
	go120Magic = 0xfffffff1 // Go 1.20 and later
)

// readSymbols returns the functions compiled into the Go executable ra,
// named the way go-vulndb names vulnerable symbols, or nil when they cannot
// be read (not ELF or Mach-O, a Go release before 1.16, an unexpected
// layout).
//
// It reads the function name table of the pclntab ("funcnametab"), which
// the runtime needs for stack traces and which therefore survives
// `-ldflags=-s -w`: stripping removes the ELF symbol table and DWARF, not
// this table. The linker writes into it the name of every function it kept
// and of every function inlined into one, so the set is the same as
// govulncheck's (symbol table functions plus their inline trees) without
// walking the inline trees, and stripped binaries keep symbol precision.
func readSymbols(ra io.ReaderAt, bi *debug.BuildInfo) *inventory.Symbols {
	tab, size := pclntab(ra)
	if tab == nil {
		return nil
	}
	names := funcNameTab(tab, size)
	if names == nil {
		return nil
	}
	r := newModuleResolver(bi)
	var b inventory.SymbolsBuilder
	var lastRaw, lastPkg string
	// One string for the whole table: names are substrings of it, so the
	// loop allocates nothing per function.
	for rest := string(names); rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "\x00")
		raw, recv, base, ok := splitFuncName(name)
		if !ok {
			continue
		}
		if raw != lastRaw {
			// Functions come grouped by package: resolve once per group.
			pkg, ok := unescapePath(raw)
			if !ok {
				continue
			}
			if pkg == "main" && bi.Path != "" {
				// govulncheck does the same: vulnerable code in a
				// main package is named by its import path.
				pkg = bi.Path
			}
			var mod string
			pkg, mod = r.resolve(pkg)
			if mod != "" {
				b.AddModule(mod)
			}
			lastRaw, lastPkg = raw, pkg
		}
		b.Add(lastPkg, recv, base)
	}
	return b.Build()
}

// pclntab finds the pclntab section of an ELF or Mach-O executable. PE
// and XCOFF executables keep it inside a data section found only through
// the symbol table, which stripped binaries lack: they get no symbols.
func pclntab(ra io.ReaderAt) (io.ReaderAt, uint64) {
	if f, err := elf.NewFile(ra); err == nil {
		for _, name := range [...]string{".gopclntab", ".data.rel.ro.gopclntab"} {
			s := f.Section(name)
			if s != nil && s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_COMPRESSED == 0 {
				return s, s.Size
			}
		}
		return nil, 0
	}
	if f, err := macho.NewFile(ra); err == nil {
		if s := f.Section("__gopclntab"); s != nil {
			return s, s.Size
		}
	}
	return nil, 0
}

// funcNameTab reads the function name table (NUL-separated names) from a
// pclntab of the given size, or nil when the header is not one it knows.
func funcNameTab(tab io.ReaderAt, size uint64) []byte {
	var hdr [8 + 8*8]byte
	if size < 8 {
		return nil
	}
	n := min(uint64(len(hdr)), size)
	if _, err := tab.ReadAt(hdr[:n], 0); err != nil {
		return nil
	}
	var order binary.ByteOrder = binary.LittleEndian
	magic := order.Uint32(hdr[:])
	if magic != go116Magic && magic != go118Magic && magic != go120Magic {
		order = binary.BigEndian
		magic = order.Uint32(hdr[:])
	}
	// Words after the 8-byte preamble: nfunc, nfiles, [textStart,]
	// funcnameOffset, cuOffset, ...
	var nameWord int
	switch magic {
	case go116Magic:
		nameWord = 2
	case go118Magic, go120Magic:
		nameWord = 3
	default:
		return nil
	}
	ptr := uint64(hdr[7])
	if hdr[4] != 0 || hdr[5] != 0 || (ptr != 4 && ptr != 8) || 8+(uint64(nameWord)+2)*ptr > n {
		return nil
	}
	word := func(i int) uint64 {
		b := hdr[8+uint64(i)*ptr:]
		if ptr == 4 {
			return uint64(order.Uint32(b))
		}
		return order.Uint64(b)
	}
	start, end := word(nameWord), word(nameWord+1)
	if start > end || end > size || end-start > maxFuncNameTab || start == end {
		return nil
	}
	names := make([]byte, end-start)
	if _, err := tab.ReadAt(names, int64(start)); err != nil {
		return nil
	}
	return names
}

// splitFuncName splits a linker function name into the package path (as
// the linker escapes it), the receiver type and the name, the way
// govulncheck does (x/vuln internal/buildinfo parseName, on debug/gosym's
// PackageName, ReceiverName and BaseName, with "(*T)" written "T"):
// "golang.org/x/net/html.(*Tokenizer).Next" → "golang.org/x/net/html",
// "Tokenizer", "Next". Compiler-generated functions ("type:.eq.T",
// "type..hash.T" before Go 1.20) belong to no package and are skipped, as
// govulncheck skips them. "go." is not such a prefix here, although
// debug/gosym takes it for one in binaries of unknown Go version: it also
// starts real import paths (go.uber.org/zap).
func splitFuncName(name string) (pkg, recv, base string, ok bool) {
	if strings.HasPrefix(name, "type:") || strings.HasPrefix(name, "go:") || strings.HasPrefix(name, "type..") {
		return "", "", "", false
	}
	// Type arguments ("Map[go.shape.int]") may hold dots and slashes:
	// find the package and receiver in the name without them.
	plain := name
	l := strings.IndexByte(name, '[')
	if l >= 0 {
		if r := strings.LastIndexByte(name, ']'); r > l {
			plain = name[:l] + name[r+1:]
		}
	}
	pathEnd := max(strings.LastIndexByte(plain, '/'), 0)
	first := strings.IndexByte(plain[pathEnd:], '.')
	if first <= 0 {
		return "", "", "", false
	}
	pkg = plain[:pathEnd+first]
	last := strings.LastIndexByte(plain[pathEnd:], '.')
	// BaseName: after the last dot of the name without type arguments,
	// unless that dot lies after them (a method of a generic type).
	dot := pathEnd + last
	nameLast := dot // the last dot of name itself
	if plain != name {
		nameLast = strings.LastIndexByte(name, '.')
		if dot > l {
			dot = nameLast
		}
	}
	base = name[dot+1:]
	if last != first {
		// ReceiverName: between the package's dot and the last dot of
		// the name with its type arguments.
		recv = name[pathEnd+first+1 : nameLast]
		if strings.HasPrefix(recv, "(*") {
			recv = strings.Trim(recv, "(*)")
		}
	}
	return pkg, recv, base, true
}

// unescapePath undoes the linker's escaping of import paths in symbol
// names ("gopkg.in/yaml%2ev2" → "gopkg.in/yaml.v2").
func unescapePath(p string) (string, bool) {
	if strings.IndexByte(p, '%') < 0 {
		return p, true
	}
	u, err := url.PathUnescape(p)
	return u, err == nil
}

// moduleResolver maps package paths found in a binary to the module they
// belong to, named as the extractor names its packages.
type moduleResolver struct {
	mods  []resolvedModule // longest path first
	cache map[string][2]string
}

type resolvedModule struct {
	path string // the path packages are imported by
	name string // Package.Name of the module: the replacement's path when replaced
}

func newModuleResolver(bi *debug.BuildInfo) *moduleResolver {
	r := &moduleResolver{cache: map[string][2]string{}}
	if bi.Main.Path != "" {
		r.mods = append(r.mods, resolvedModule{bi.Main.Path, bi.Main.Path})
	}
	for _, d := range bi.Deps {
		m := resolvedModule{d.Path, d.Path}
		if d.Replace != nil && d.Replace.Version != "" {
			// Replaced by another module version: advisories name the
			// replacement. A replacement by a local directory has no
			// version and no package, so the original name stays.
			m.name = d.Replace.Path
		}
		r.mods = append(r.mods, m)
	}
	sort.SliceStable(r.mods, func(i, j int) bool { return len(r.mods[i].path) > len(r.mods[j].path) })
	return r
}

// resolve returns the package path as advisories would write it (under
// the replacement's path for a module replaced by another path) and the
// module's name ("stdlib" for the standard library, "" when no module of
// the build info owns the package).
func (r *moduleResolver) resolve(pkg string) (string, string) {
	if c, ok := r.cache[pkg]; ok {
		return c[0], c[1]
	}
	out := [2]string{pkg, ""}
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") {
		out[1] = StdlibName // standard library (and its vendor/ tree) packages have no dot in their first element
	} else {
		for _, m := range r.mods {
			if pkg == m.path || (strings.HasPrefix(pkg, m.path) && pkg[len(m.path)] == '/') {
				out[1] = m.name
				if m.name != m.path {
					out[0] = m.name + pkg[len(m.path):]
				}
				break
			}
		}
	}
	r.cache[pkg] = out
	return out[0], out[1]
}
