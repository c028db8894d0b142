package posture

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkEvaluate10k evaluates 10,000 objects, made by repeating the
// committed manifests and upstream PSS fixtures, against the whole
// catalogue. Target: under 1 s and 200 MB per evaluation.
func BenchmarkEvaluate10k(b *testing.B) {
	src := decodeFiles(b, manifestFiles(b)...)
	pss := decodeFiles(b, mustGlob(b, "testdata/pss/restricted/v1.37/*/*.yaml")...)
	src.Objects = append(src.Objects, pss.Objects...)
	in := &Decoded{Objects: make([]Object, 0, 10_000)}
	for i := 0; len(in.Objects) < 10_000; i++ {
		o := src.Objects[i%len(src.Objects)]
		in.Objects = append(in.Objects, o)
	}
	ev, err := New(Config{TrustedRegistries: []string{"registry.example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		rep, err := ev.Evaluate(context.Background(), in)
		if err != nil || len(rep.Results) == 0 {
			b.Fatal(err)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
		runtime.KeepAlive(rep)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10_000, "ns/object")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}

func mustGlob(b testing.TB, pattern string) []string {
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		b.Fatalf("%s: %v", pattern, err)
	}
	return m
}

func FuzzDecodeManifests(f *testing.F) {
	for _, p := range []string{"testdata/manifests/legacy.yaml", "testdata/manifests/agent.yaml", "testdata/manifests/crd.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}]}`))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: [\n---\n--- \nkind: Service\n"))
	f.Add([]byte(strings.Repeat("- ", 500)))
	dec, err := NewDecoder(Limits{MaxFileBytes: 1 << 20, MaxObjects: 1000})
	if err != nil {
		f.Fatal(err)
	}
	ev, err := New(Config{TrustedRegistries: []string{"r.example"}, AllowedHostPaths: []string{"/var/log"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Decoded
		if err := dec.Decode(context.Background(), "fuzz.yaml", strings.NewReader(string(data)), &in); err != nil {
			return
		}
		if len(in.Objects) > 1000 {
			t.Fatalf("%d objects over the cap", len(in.Objects))
		}
		rep, err := ev.Evaluate(context.Background(), &in)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rep.Results {
			if r.Object < 0 || r.Object >= len(rep.Objects) || r.Status == 0 {
				t.Fatalf("bad result %+v", r)
			}
		}
	})
}
