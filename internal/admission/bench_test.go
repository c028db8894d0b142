package admission

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/demo"
	"github.com/bulwark-security/bulwark/internal/image"
	"github.com/bulwark-security/bulwark/internal/inventory/list"
	"github.com/bulwark-security/bulwark/internal/policy"
	"github.com/bulwark-security/bulwark/internal/scan"
	"github.com/bulwark-security/bulwark/internal/vulndb"
)

// demoReport is the real scan of the bundled demo image as the policy sees
// it (what central would answer for its digest).
var demoReport = sync.OnceValues(func() (*policy.ImageReport, error) {
	dir, err := demoDir()
	if err != nil {
		return nil, err
	}
	s := &scan.Scanner{Extractors: list.All(), Version: "bench"}
	res, err := s.Image(context.Background(), "docker-archive:"+filepath.Join(dir, filepath.FromSlash(demo.ImagePath)), image.Options{}, nil)
	if err != nil {
		return nil, err
	}
	db, err := vulndb.Open(filepath.Join(dir, "db"), vulndb.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := scan.Match(context.Background(), db, res); err != nil {
		return nil, err
	}
	rep := &policy.ImageReport{Scanned: true, Digest: res.Target.Digest}
	for _, f := range res.Findings {
		pf := policy.Finding{ID: f.Vulnerability.ID, Aliases: f.Vulnerability.Aliases, Package: f.Package.Name, Version: f.Package.Version,
			FixedVersions: f.FixedVersions, Severity: f.Vulnerability.Severity, KEV: f.Vulnerability.KEV != nil}
		for _, c := range f.Vulnerability.CVSS {
			pf.CVSS = max(pf.CVSS, c.Score)
		}
		rep.Findings = append(rep.Findings, pf)
	}
	return rep, nil
})

// benchPolicies is n policies of the shapes a real installation mixes, all
// in scope for namespace "prod".
func benchPolicies(n int) string {
	shapes := []string{
		"  mode: deny\n  vulnerabilities: {maxSeverity: critical, knownExploited: false, deny: [CVE-2014-0160]}",
		"  mode: deny\n  configuration: {podSecurity: baseline}",
		"  mode: warn\n  configuration: {hardening: true}",
		"  mode: deny\n  provenance: {trustedRegistries: [registry.example.com], noLatest: true}",
		"  mode: audit\n  rules:\n    - name: team\n      expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\"",
	}
	if only := os.Getenv("BULWARK_BENCH_SHAPES"); only != "" { // bisecting the load test's tail
		var keep []string
		for _, f := range strings.Split(only, ",") {
			if i, err := strconv.Atoi(f); err == nil && i >= 0 && i < len(shapes) {
				keep = append(keep, shapes[i])
			}
		}
		shapes = keep
	}
	var b strings.Builder
	for i := range n {
		b.WriteString(policyDoc(fmt.Sprintf("p%02d", i), shapes[i%len(shapes)]))
	}
	return b.String()
}

const benchDigest = "sha256:5e3f4b2d1c0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706"

// benchDeployment is a realistic Deployment review (two containers, a
// security context, resources, probes, env) of ~3 KB.
func benchDeployment(uid string) []byte { return benchDeploymentFrom(uid, "registry.example.com") }

// benchDeploymentFrom is benchDeployment with its images pulled from
// registry: any other than registry.example.com breaks the provenance
// policy (deny), with the same digest (warm cache).
func benchDeploymentFrom(uid, registry string) []byte {
	img := registry + "/shop/web:1.4.2@" + benchDigest
	c := func(name string) map[string]any {
		return map[string]any{"name": name, "image": img,
			"ports": []any{map[string]any{"containerPort": 8080}},
			"env":   []any{map[string]any{"name": "LOG_LEVEL", "value": "info"}, map[string]any{"name": "DB_HOST", "value": "db"}},
			"resources": map[string]any{"limits": map[string]any{"cpu": "500m", "memory": "256Mi"},
				"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}},
			"securityContext": map[string]any{"allowPrivilegeEscalation": false, "runAsNonRoot": true, "readOnlyRootFilesystem": true,
				"capabilities": map[string]any{"drop": []any{"ALL"}}},
			"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/ready", "port": 8080}},
			"livenessProbe":  map[string]any{"httpGet": map[string]any{"path": "/live", "port": 8080}},
		}
	}
	obj := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "prod", "labels": map[string]any{"team": "shop", "app": "web"}},
		"spec": map[string]any{"replicas": 3, "selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"automountServiceAccountToken": false, "serviceAccountName": "web",
					"securityContext": map[string]any{"seccompProfile": map[string]any{"type": "RuntimeDefault"}},
					"containers":      []any{c("app"), c("sidecar")}}}}}
	return review(uid, "CREATE", "Deployment", "prod", "web", obj)
}

// benchServer is a webhook with 20 policies and a warm verdict cache
// holding the real demo scan's findings.
func benchServer(tb testing.TB, listen string, certs *Certs) (*Server, *Images) {
	rep, err := demoReport()
	if err != nil {
		tb.Fatal(err)
	}
	images := NewImages(CentralConfig{URL: "https://central.invalid"}, nil)
	images.Prime(benchDigest, rep)
	srv, err := New(Config{Listen: listen}, Deps{Policies: loadPolicies(tb, benchPolicies(20)), Images: images, Certs: certs})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, images
}

// BenchmarkAdmissionReview is one review through the handler: decode,
// evaluate 20 policies with a warm cache, encode.
func BenchmarkAdmissionReview(b *testing.B) {
	srv, _ := benchServer(b, "127.0.0.1:0", nil)
	h := srv.Handler()
	body := benchDeployment("bench")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	defer func() { b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op") }()
	for b.Loop() {
		req := httptest.NewRequest("POST", PathValidate, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code != 200 || !bytes.Contains(rr.Body.Bytes(), []byte(`"allowed":true`)) {
			b.Fatalf("%d %s", rr.Code, rr.Body.String())
		}
	}
}

func gcCount() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// cpuTime is the CPU time (user+system) the process used so far: on a
// shared machine it measures the work per operation where wall time
// measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sysTime is the kernel's share of cpuTime (system calls, and on loopback
// the TCP processing of what the process sends and receives).
func sysTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Stime.Nano())
}

// procStatus reads a kB field of /proc/self/status, in bytes (0 elsewhere).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
