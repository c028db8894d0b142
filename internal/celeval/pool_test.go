package celeval

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestJSONPoolRecycles: documents decoded through one pool, each after
// the previous was released, come out exactly as FromJSON gives them (no
// key of an earlier document survives in a recycled map), and the maps
// really are reused.
func TestJSONPoolRecycles(t *testing.T) {
	var jp JSONPool
	docs := append([]string{`{"a":{"b":1,"c":[{"d":true}]},"e":"x"}`, `{"z":{}}`, `{"a":{"q":2}}`,
		// Interned string values: an escaped spelling of a plain string,
		// and plain bytes equal to an escaped string's source.
		`{"s":["\u0041","A","\"q\"","é",["x",[]],"\\"]}`, `{"s":["A","\"q\"","\\",["x"]],"t":"\\"}`}, fromJSONSeeds...)
	var prev map[string]any
	reused := false
	for round := range 2 {
		for _, d := range docs {
			if len(d) > maxPooledJSONBytes {
				continue
			}
			want, werr := FromJSON([]byte(d))
			got, release, gerr := jp.FromJSON([]byte(d))
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%.60q: FromJSON error %v, pooled error %v", d, werr, gerr)
			}
			if werr == nil && !reflect.DeepEqual(want, got) {
				t.Fatalf("round %d %.60q (-FromJSON +pooled):\n%s", round, d, cmp.Diff(want, got))
			}
			if m, ok := got.(map[string]any); ok && prev != nil && reflect.ValueOf(m).UnsafePointer() == reflect.ValueOf(prev).UnsafePointer() {
				reused = true
			}
			if m, ok := got.(map[string]any); ok {
				prev = m
			}
			release()
			release() // a second release is a no-op, not a double free
		}
	}
	if !reused {
		t.Error("no map was ever reused")
	}
	// Arrays are carved from the arena's slab once it has grown (the
	// pool may drop an arena now and then, -race does it on purpose).
	doc := []byte(`{"a":[1,2,[3]],"b":["x"]}`)
	var prevElem *any
	arrays := false
	for range 50 {
		v, release, err := jp.FromJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		a := v.(map[string]any)["a"].([]any)
		arrays = arrays || &a[0] == prevElem
		prevElem = &a[0]
		release()
	}
	if !arrays {
		t.Error("no array was ever recycled")
	}
}

// TestJSONPoolConcurrent decodes and releases from many goroutines at once
// (run with -race): each sees its own document intact.
func TestJSONPoolConcurrent(t *testing.T) {
	var jp JSONPool
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				doc := fmt.Sprintf(`{"g":%d,"i":%d,"m":{"k%d":[%d,{"n":"%d"}]}}`, g, i, i%7, i, g)
				want, _ := FromJSON([]byte(doc))
				got, release, err := jp.FromJSON([]byte(doc))
				if err != nil {
					t.Error(err)
					return
				}
				if !reflect.DeepEqual(want, got) {
					t.Errorf("%s: %v", doc, got)
				}
				release()
			}
		})
	}
	wg.Wait()
}

// FuzzJSONPool holds the pooled decoder to FromJSON on pairs of inputs,
// the second decoded into the maps the first released.
func FuzzJSONPool(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":2}}`), []byte(`{"b":{}}`))
	f.Add([]byte(`[{"x":null}]`), []byte(`{"x":{"x":{"x":1}}}`))
	f.Add([]byte(`{"a":`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var jp JSONPool
		for _, in := range [][]byte{a, b, a} {
			want, werr := FromJSON(in)
			got, release, gerr := jp.FromJSON(in)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%.60q: FromJSON error %v, pooled error %v", in, werr, gerr)
			}
			if werr == nil && !reflect.DeepEqual(want, got) {
				t.Fatalf("%.60q (-FromJSON +pooled):\n%s", in, cmp.Diff(want, got))
			}
			release()
		}
	})
}

// BenchmarkJSONPool converts the committed ~3 KB Deployment through a pool
// (compare BenchmarkFromJSON/parser).
func BenchmarkJSONPool(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "deployment.json"))
	if err != nil {
		b.Fatal(err)
	}
	var jp JSONPool
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		_, release, err := jp.FromJSON(raw)
		if err != nil {
			b.Fatal(err)
		}
		release()
	}
}
