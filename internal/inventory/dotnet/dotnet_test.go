package dotnet

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/bulwark-security/bulwark/internal/inventory/inventorytest"
)

func TestRequired(t *testing.T) {
	ex := NewDepsJSON()
	inventorytest.CheckRequired(t, ex, inventory.FileInfo{}, map[string]bool{
		"app/dotnetapp.deps.json":      true,
		"usr/share/dotnet/x.deps.json": true,
		"app/deps.json":                false,
		"app/x.deps.json.bak":          false,
		"app/x.runtimeconfig.json":     false,
	})
	inventorytest.CheckRequiredNoAllocs(t, []string{"app/dotnetapp.deps.json"}, ex)
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
			b := inventorytest.ReadFile(t, f)
			o := inventorytest.MustExtract(t, NewDepsJSON(), f, b)
			inventorytest.Golden(t, strings.TrimSuffix(filepath.Base(f), ".deps.json"), o.Packages)

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
	o := inventorytest.MustExtract(t, NewDepsJSON(), "app/dotnetapp.deps.json", inventorytest.ReadFile(t, "testdata/app/dotnetapp/dotnetapp.deps.json"))
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

	o = inventorytest.MustExtract(t, NewDepsJSON(), "app/MyApp.deps.json", inventorytest.ReadFile(t, "testdata/app/myapp/MyApp.deps.json"))
	if len(o.Packages) != 1 || o.Packages[0].PURL != "pkg:nuget/Newtonsoft.Json@13.0.3" || o.Packages[0].Indirect {
		t.Errorf("reference assemblies must be skipped: got %+v", o.Packages)
	}
}

func TestHostile(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	inventorytest.RunHostile(t, NewDepsJSON(), "x.deps.json", []inventorytest.Case{
		{Name: "empty"},
		{Name: "wordpress script handles", In: `["lodash","moment","react","wp-api-fetch","wp-blob"]`},
		{Name: "not json", In: "bogus"},
		{Name: "truncated", In: `{"libraries":{"A/1.0.0":{"type":"pack`, WantErr: true},
		{Name: "deep nesting", In: `{"targets":` + deep + `}`, WantErr: true},
		{Name: "libraries wrong type", In: `{"libraries":[1,2]}`, WantErr: true},
		{Name: "type wrong type", In: `{"libraries":{"A/1.0.0":{"type":1}}}`, WantErr: true},
		{Name: "dependencies wrong type", In: `{"targets":{"t":{"P/1":{"dependencies":{"A":1}}}},"libraries":{}}`, WantErr: true},
		{Name: "null", In: `null`},
		{Name: "truncated object", In: `{"libr`, WantErr: true},
		{Name: "bad keys", In: `{"libraries":{"A":{"type":"package"},"/1.0":{"type":"package"},"A/":{"type":"package"},"../../x/1.0":{"type":"package"},"A/1.0 ; x":{"type":"package"}}}`},
		{Name: "giant name", In: `{"libraries":{"` + strings.Repeat("A", 1<<20) + `/1.0.0":{"type":"package"}}}`},
		{Name: "byte order mark", In: "\xef\xbb\xbf" + `{"libraries":{"A/1.0.0":{"type":"package"}}}`, Pkgs: 1},
		{Name: "good", In: `{"libraries":{"A.B/1.0.0-rc.1+x":{"type":"package"}}}`, Pkgs: 1},
	})
	// A stream longer than the bound, of undeclared size.
	in := inventorytest.Input("x.deps.json", make([]byte, MaxDepsJSONSize+1))
	in.Info.Size = 0
	if _, err := NewDepsJSON().Extract(context.Background(), in); !errors.Is(err, inventory.ErrTooLarge) {
		t.Errorf("oversized: err = %v", err)
	}
}

func FuzzDepsJSON(f *testing.F) {
	f.Add([]byte(`{"targets":{"t":{"P/1.0.0":{"dependencies":{"A":"1.0.0"}}}},"libraries":{"P/1.0.0":{"type":"project"},"A/1.0.0":{"type":"package"},"runtimepack.R/8.0.1":{"type":"runtimepack"}}}`))
	f.Add(inventorytest.ReadFile(f, "testdata/app/myapp/MyApp.deps.json"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := inventorytest.Fuzz(t, NewDepsJSON(), "x.deps.json", in)
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
	data := inventorytest.ReadFile(b, "testdata/app/dotnetapp/dotnetapp.deps.json")
	inventorytest.Benchmark(b, NewDepsJSON(), "x.deps.json", data, func(out inventory.Output) bool { return len(out.Packages) > 0 })
}
