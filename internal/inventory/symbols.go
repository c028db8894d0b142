package inventory

import (
	"fmt"
	"slices"
	"strings"
)

// Symbols is the set of functions compiled into one executable, named the
// way advisories name vulnerable code: a package import path and a symbol
// ("Parse", or "Tokenizer.Next" for a method, pointer receivers written
// without "(*...)"). It lets the matcher tell "this module version is
// vulnerable" from "the vulnerable function is in this binary", which is
// what govulncheck reports in binary mode.
//
// A linker keeps only the functions reachable from main (and the runtime),
// so a function missing from the set is not in the binary at all. The set
// is compact on purpose, as every Go binary of an image has one while the
// scan runs: functions are kept as 64-bit hashes (a collision can only
// make an absent function look present, the safe direction), package
// paths and module names as sorted strings.
//
// A Symbols is immutable once built and safe for concurrent use. Its
// methods accept a nil receiver, which knows nothing and answers false.
type Symbols struct {
	funcs   []uint64 // sorted hashes of pkg + "\x00" + symbol
	pkgs    []string // sorted package paths with at least one function
	modules []string // sorted modules with at least one function (Package.Name spelling)
}

// SymbolsBuilder collects the functions of one executable; Build returns
// the Symbols. The zero value is ready to use.
type SymbolsBuilder struct {
	funcs   []uint64
	pkgs    map[string]struct{}
	modules map[string]struct{}
	lastPkg string
}

// Add records function name of package pkg; recv is the receiver type for a
// method ("Tokenizer" for "(*Tokenizer).Next"), "" for a function.
func (b *SymbolsBuilder) Add(pkg, recv, name string) {
	h := hashStr(fnvOffset, pkg)
	h *= fnvPrime // the NUL separator: h ^= 0 is a no-op
	if recv != "" {
		h = hashStr(h, recv)
		h = (h ^ '.') * fnvPrime
	}
	b.funcs = append(b.funcs, hashStr(h, name))
	if b.pkgs == nil {
		b.pkgs = map[string]struct{}{}
	}
	if pkg != b.lastPkg || len(b.pkgs) == 0 {
		// Functions come grouped by package: skip the map most of the time.
		b.pkgs[pkg] = struct{}{}
		b.lastPkg = pkg
	}
}

// AddModule records that the module named module (as Package.Name of the
// packages found in the same file spells it: "stdlib", the replacement's
// path for a replaced module) has functions in the executable.
func (b *SymbolsBuilder) AddModule(module string) {
	if b.modules == nil {
		b.modules = map[string]struct{}{}
	}
	b.modules[module] = struct{}{}
}

// Build returns the set. The builder must not be used afterwards.
func (b *SymbolsBuilder) Build() *Symbols {
	s := &Symbols{funcs: b.funcs}
	slices.Sort(s.funcs)
	s.funcs = slices.Clip(slices.Compact(s.funcs))
	s.pkgs = sortedKeys(b.pkgs)
	s.modules = sortedKeys(b.modules)
	*b = SymbolsBuilder{}
	return s
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// FNV-1a, 64 bits: cheap, no allocation, and well spread over the short
// ASCII names functions have.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashStr(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// funcHash is the hash Add computes for sym ("Parse", or "Tokenizer.Next"
// for a method) of package pkg.
func funcHash(pkg, sym string) uint64 {
	h := hashStr(fnvOffset, pkg)
	h *= fnvPrime
	return hashStr(h, sym)
}

// HasFunc reports whether the function sym of package pkg is in the binary.
func (s *Symbols) HasFunc(pkg, sym string) bool {
	if s == nil {
		return false
	}
	_, ok := slices.BinarySearch(s.funcs, funcHash(pkg, sym))
	return ok
}

// HasPackage reports whether any function of package pkg is in the binary.
func (s *Symbols) HasPackage(pkg string) bool {
	if s == nil {
		return false
	}
	_, ok := slices.BinarySearch(s.pkgs, pkg)
	return ok
}

// HasModule reports whether any function of the module named module (as
// Package.Name spells it) is in the binary.
func (s *Symbols) HasModule(module string) bool {
	if s == nil {
		return false
	}
	_, ok := slices.BinarySearch(s.modules, module)
	return ok
}

// Len is the number of distinct functions.
func (s *Symbols) Len() int {
	if s == nil {
		return 0
	}
	return len(s.funcs)
}

// Packages returns the package paths with at least one function, sorted.
func (s *Symbols) Packages() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.pkgs)
}

// Equal reports whether s and o hold the same functions, packages and
// modules. go-cmp uses it, so Packages compare without reaching into
// unexported fields.
func (s *Symbols) Equal(o *Symbols) bool {
	if s == nil || o == nil {
		return s == o
	}
	return slices.Equal(s.funcs, o.funcs) && slices.Equal(s.pkgs, o.pkgs) && slices.Equal(s.modules, o.modules)
}

// String summarises the set for test failures and debugging.
func (s *Symbols) String() string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("Symbols{%d functions in %d packages of %s}", len(s.funcs), len(s.pkgs), strings.Join(s.modules, ", "))
}
