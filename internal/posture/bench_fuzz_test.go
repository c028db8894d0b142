package posture

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/celeval"
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

// BenchmarkEvaluate10kCEL is BenchmarkEvaluate10k with two custom CEL
// controls matching every workload kind: each object is converted to its
// JSON shape once, for both.
func BenchmarkEvaluate10kCEL(b *testing.B) {
	src := decodeFiles(b, manifestFiles(b)...)
	pss := decodeFiles(b, mustGlob(b, "testdata/pss/restricted/v1.37/*/*.yaml")...)
	src.Objects = append(src.Objects, pss.Objects...)
	in := &Decoded{Objects: make([]Object, 0, 10_000)}
	for i := 0; len(in.Objects) < 10_000; i++ {
		in.Objects = append(in.Objects, src.Objects[i%len(src.Objects)])
	}
	env, err := celeval.NewEnv()
	if err != nil {
		b.Fatal(err)
	}
	cs, err := LoadCustomControls(env, "bench.yaml", []byte(`kind: Control
id: B-1
title: owner label
severity: low
match: {kinds: [Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet]}
expression: "has(object.metadata.labels) && 'owner' in object.metadata.labels"
messageExpression: "object.metadata.name + ' has no owner'"
---
kind: Control
id: B-2
title: named
severity: low
match: {kinds: ["*"]}
expression: "has(object.metadata.name) && size(object.metadata.name) < 64"
`))
	if err != nil {
		b.Fatal(err)
	}
	ev, err := New(Config{TrustedRegistries: []string{"registry.example.com"}, Custom: cs})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := ev.Evaluate(context.Background(), in)
		if err != nil || len(rep.Results) == 0 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10_000, "ns/object")
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

// FuzzFix: whatever the input, Fix never panics, and when it writes a fix
// the output still decodes without errors.
func FuzzFix(f *testing.F) {
	for _, p := range []string{"testdata/fix/chart.yaml", "testdata/fix/broken.yaml", "testdata/manifests/legacy.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec:\n    hostPID: true\n    containers: [{name: c, image: x}]\n"))
	dec, err := NewDecoder(Limits{MaxFileBytes: 1 << 20, MaxObjects: 200})
	if err != nil {
		f.Fatal(err)
	}
	ev, err := New(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Fix(context.Background(), ev, dec, "fuzz.yaml", data, nil)
		if err != nil || !res.Changed() {
			return
		}
		var in Decoded
		if err := dec.Decode(context.Background(), "fixed.yaml", bytes.NewReader(res.After), &in); err != nil || len(in.Errors) > 0 {
			t.Fatalf("fixed output does not decode: %v %v\n%s", err, in.Errors, res.After)
		}
	})
}

// FuzzCustomControls: hostile control files give errors, never panics.
func FuzzCustomControls(f *testing.F) {
	for _, p := range []string{"testdata/controls/org.yaml", "testdata/controls/bad-syntax.yaml", "testdata/controls/bad-type.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	env, err := celeval.NewEnv()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := LoadCustomControls(env, "fuzz.yaml", data)
		if err == nil {
			for _, c := range cs {
				if c.ID == "" || c.program == nil {
					t.Fatalf("loaded an incomplete control %+v", c)
				}
			}
		}
	})
}

// FuzzNodeCmdline: any /proc/<pid>/cmdline and kubelet config parse
// without panics.
func FuzzNodeCmdline(f *testing.F) {
	f.Add([]byte("kube-apiserver\x00--authorization-mode\x00Node,RBAC\x00--anonymous-auth\x00"), []byte("authentication: {anonymous: {enabled: false}}\n"))
	f.Add([]byte("kubelet\x00--config=/var/lib/kubelet/config.yaml\x00-\x00--\x00--=x"), []byte("readOnlyPort: [1, 2]\nfeatureGates: 7\n"))
	f.Fuzz(func(t *testing.T, cmdline, kubeletCfg []byte) {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "proc", "42"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "var", "lib", "kubelet"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "proc", "42", "cmdline"), cmdline, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "var", "lib", "kubelet", "config.yaml"), kubeletCfg, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := EvaluateNode(context.Background(), NodeOptions{Root: root})
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
