package dotnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func extract(t testing.TB, path string, b []byte) (inventory.Output, error) {
	t.Helper()
	return NewDepsJSON().Extract(context.Background(), &inventory.Input{
		Path: path, Info: inventory.FileInfo{Size: int64(len(b))}, Reader: bytes.NewReader(b),
	})
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestRequired(t *testing.T) {
	ex := NewDepsJSON()
	for path, want := range map[string]bool{
		"app/dotnetapp.deps.json":      true,
		"usr/share/dotnet/x.deps.json": true,
		"app/deps.json":                false,
		"app/x.deps.json.bak":          false,
		"app/x.runtimeconfig.json":     false,
	} {
		if got := ex.Required(path, inventory.FileInfo{}); got != want {
			t.Errorf("Required(%q) = %v", path, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ex.Required("app/dotnetapp.deps.json", inventory.FileInfo{}) }); n != 0 {
		t.Errorf("Required allocates %v times", n)
	}
}

// TestDepsJSON reads deps.json files written by the .NET SDK (see
// testdata/README.md for where they come from).
func TestDepsJSON(t *testing.T) {
	files, err := filepath.Glob("testdata/app/*/*.deps.json")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b := readFile(t, f)
			o, err := extract(t, f, b)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(filepath.Base(f), ".deps.json"), o.Packages)

			// Every package and runtime pack entry of "libraries" is
			// reported, nothing else.
			var raw struct {
				Libraries map[string]struct{ Type string } `json:"libraries"`
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, l := range raw.Libraries {
				if l.Type == "package" || l.Type == "runtimepack" {
					want++
				}
			}
			if len(o.Packages) != want {
				t.Errorf("%d packages, want %d", len(o.Packages), want)
			}
			for _, p := range o.Packages {
				if p.Ecosystem != inventory.EcosystemNuGet || p.Type != inventory.TypeNuGet || p.PURL != "pkg:nuget/"+p.Name+"@"+p.Version {
					t.Errorf("identity fields: %+v", p)
				}
			}
		})
	}
}

func TestDepsJSONDetails(t *testing.T) {
	o, err := extract(t, "app/dotnetapp.deps.json", readFile(t, "testdata/app/dotnetapp/dotnetapp.deps.json"))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Version  string
		Indirect bool
	}
	got := make(map[string]row)
	for _, p := range o.Packages {
		got[p.Name] = row{p.Version, p.Indirect}
	}
	for name, want := range map[string]row{
		// The self-contained runtime, under its NuGet name.
		"Microsoft.NETCore.App.Runtime.win-x64": {"8.0.14", false},
		"Humanizer":                             {"2.14.1", false},
		"Humanizer.Core":                        {"2.14.1", true},
	} {
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s: got %+v (found %v), want %+v", name, g, ok, want)
		}
	}
	if _, ok := got["dotnetapp"]; ok {
		t.Error("the application itself reported as a package")
	}

	o, err = extract(t, "app/MyApp.deps.json", readFile(t, "testdata/app/myapp/MyApp.deps.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Packages) != 1 || o.Packages[0].PURL != "pkg:nuget/Newtonsoft.Json@13.0.3" || o.Packages[0].Indirect {
		t.Errorf("reference assemblies must be skipped: got %+v", o.Packages)
	}
}

func TestHostile(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	tests := []struct {
		name, in string
		wantErr  bool
		wantPkgs int
	}{
		{"empty", "", false, 0},
		{"wordpress script handles", `["lodash","moment","react","wp-api-fetch","wp-blob"]`, false, 0},
		{"not json", "bogus", false, 0},
		{"truncated", `{"libraries":{"A/1.0.0":{"type":"pack`, true, 0},
		{"deep nesting", `{"targets":` + deep + `}`, true, 0},
		{"libraries wrong type", `{"libraries":[1,2]}`, true, 0},
		{"type wrong type", `{"libraries":{"A/1.0.0":{"type":1}}}`, true, 0},
		{"dependencies wrong type", `{"targets":{"t":{"P/1":{"dependencies":{"A":1}}}},"libraries":{}}`, true, 0},
		{"null", `null`, false, 0},
		{"truncated object", `{"libr`, true, 0},
		{"bad keys", `{"libraries":{"A":{"type":"package"},"/1.0":{"type":"package"},"A/":{"type":"package"},"../../x/1.0":{"type":"package"},"A/1.0 ; x":{"type":"package"}}}`, false, 0},
		{"giant name", `{"libraries":{"` + strings.Repeat("A", 1<<20) + `/1.0.0":{"type":"package"}}}`, false, 0},
		{"byte order mark", "\xef\xbb\xbf" + `{"libraries":{"A/1.0.0":{"type":"package"}}}`, false, 1},
		{"good", `{"libraries":{"A.B/1.0.0-rc.1+x":{"type":"package"}}}`, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := extract(t, "x.deps.json", []byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(o.Packages) != tt.wantPkgs {
				t.Errorf("got %+v", o.Packages)
			}
		})
	}
	_, err := NewDepsJSON().Extract(context.Background(), &inventory.Input{
		Path: "x.deps.json", Reader: bytes.NewReader(make([]byte, MaxDepsJSONSize+1)),
	})
	if !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

func golden(t *testing.T, name string, got []inventory.Package) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name+".json")
	if *update {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want []inventory.Package
	if err := json.Unmarshal(readFile(t, file), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}

func FuzzDepsJSON(f *testing.F) {
	f.Add([]byte(`{"targets":{"t":{"P/1.0.0":{"dependencies":{"A":"1.0.0"}}}},"libraries":{"P/1.0.0":{"type":"project"},"A/1.0.0":{"type":"package"},"runtimepack.R/8.0.1":{"type":"runtimepack"}}}`))
	f.Add(readFile(f, "testdata/app/myapp/MyApp.deps.json"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := extract(t, "x.deps.json", in)
		if err != nil {
			return
		}
		for _, p := range o.Packages {
			if !validName(p.Name) || !validVersion(p.Version) || strings.HasPrefix(p.Name, "runtimepack.") {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}

func BenchmarkDepsJSON(b *testing.B) {
	data := readFile(b, "testdata/app/dotnetapp/dotnetapp.deps.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := extract(b, "x.deps.json", data); err != nil {
			b.Fatal(err)
		}
	}
}
