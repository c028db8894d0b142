package inventory

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSymbols(t *testing.T) {
	var b SymbolsBuilder
	b.Add("golang.org/x/net/html", "", "Parse")
	b.Add("golang.org/x/net/html", "Tokenizer", "Next")
	b.Add("golang.org/x/net/html", "", "Parse") // duplicates collapse
	b.Add("fmt", "", "Println")
	b.Add("", "", "main") // an empty package is a package like any other
	b.AddModule("golang.org/x/net")
	b.AddModule("stdlib")
	b.AddModule("stdlib")
	s := b.Build()

	for _, c := range []struct {
		pkg, sym string
		want     bool
	}{
		{"golang.org/x/net/html", "Parse", true},
		{"golang.org/x/net/html", "Tokenizer.Next", true}, // a method is "Receiver.Name"
		{"fmt", "Println", true},
		{"golang.org/x/net/html", "Next", false},
		{"golang.org/x/net/html", "Tokenizer", false},
		{"golang.org/x/net", "html.Parse", false}, // the package/symbol split is part of the key
		{"golang.org/x/net/htm", "l.Parse", false},
		{"fmt", "Printf", false},
	} {
		if got := s.HasFunc(c.pkg, c.sym); got != c.want {
			t.Errorf("HasFunc(%q, %q) = %v, want %v", c.pkg, c.sym, got, c.want)
		}
	}
	if s.Len() != 4 {
		t.Errorf("Len = %d, want 4", s.Len())
	}
	if diff := cmp.Diff([]string{"", "fmt", "golang.org/x/net/html"}, s.Packages()); diff != "" {
		t.Errorf("packages (-want +got):\n%s", diff)
	}
	if !s.HasPackage("fmt") || s.HasPackage("golang.org/x/net") || !s.HasModule("stdlib") || s.HasModule("golang.org/x/text") {
		t.Errorf("packages or modules wrong: %v", s)
	}

	var nilSet *Symbols
	if nilSet.HasFunc("fmt", "Println") || nilSet.HasPackage("fmt") || nilSet.HasModule("stdlib") || nilSet.Len() != 0 || nilSet.Packages() != nil {
		t.Error("a nil set must know nothing")
	}
	if !nilSet.Equal(nil) || nilSet.Equal(s) || s.Equal(nil) || !s.Equal(s) {
		t.Error("Equal is wrong about nil sets")
	}
	var b2 SymbolsBuilder
	b2.Add("fmt", "", "Println")
	if other := b2.Build(); other.Equal(s) || s.Equal(other) {
		t.Error("different sets compare equal")
	}
	// go-cmp uses Equal: packages holding sets compare without reaching
	// into unexported fields.
	if diff := cmp.Diff(Package{Name: "a", Symbols: s}, Package{Name: "a", Symbols: s}); diff != "" {
		t.Errorf("cmp.Diff of equal packages: %s", diff)
	}
	if diff := cmp.Diff(Package{Symbols: s}, Package{}); diff == "" {
		t.Error("cmp.Diff does not see a missing set")
	}
}
