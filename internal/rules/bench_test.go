package rules

import (
	"strings"
	"testing"
)

// benchEvents is the committed synthetic mix: mostly benign opens, execs and
// connects (what a node sees), with a few that match.
func benchEvents() []*Event {
	var evs []*Event
	paths := []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/ld.so.cache", "/app/config.yaml", "/proc/self/status", "/tmp/cache/0001"}
	for i := 0; i < 60; i++ {
		evs = append(evs, fileEv(EventOpenat, "nginx", paths[i%len(paths)], 0))
	}
	for i := 0; i < 10; i++ {
		evs = append(evs, fileEv(EventOpenat, "python3", "/app/out.log", OpenWrite|OpenCreate))
	}
	for _, c := range [][2]string{{"ls", "-la /app"}, {"cat", "/app/config.yaml"}, {"python3", "manage.py runserver"}, {"sh", "-c ./entrypoint.sh"}, {"grep", "-r TODO ."}} {
		for i := 0; i < 3; i++ {
			evs = append(evs, exec(c[0], c[1], withParent("bash")))
		}
	}
	for i := 0; i < 10; i++ {
		evs = append(evs, connectEv("python3", "10.0.3.4", 5432))
	}
	evs = append(evs, exec("xmrig", "-o stratum+tcp://pool:3333"), connectEv("curl", "169.254.169.254", 80),
		fileEv(EventOpenat, "cat", "/etc/shadow", 0))
	return evs
}

func BenchmarkEngineDefaultRules(b *testing.B) {
	eng := mustDefaults(b)
	evs := benchEvents()
	var dst []Match
	matched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst = eng.Evaluate(evs[i%len(evs)], dst[:0])
		matched += len(dst)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if matched == 0 {
		b.Fatal("no event matched: the mix is wrong")
	}
}

// TestNonMatchingEventsDoNotAllocate is the allocation contract of Evaluate.
func TestNonMatchingEventsDoNotAllocate(t *testing.T) {
	eng := mustDefaults(t)
	var dst []Match
	for _, ev := range benchEvents() {
		if len(eng.Evaluate(ev, nil)) > 0 {
			continue
		}
		if n := testing.AllocsPerRun(100, func() { dst = eng.Evaluate(ev, dst[:0]) }); n != 0 {
			t.Errorf("%s %s: %v allocs", ev.Type, ev.Proc.Cmdline, n)
		}
	}
}

func benchAudit() [][]byte {
	var out [][]byte
	for _, s := range []string{
		podCreate(`"securityContext":{"privileged":false}`, `{"name":"d","emptyDir":{}}`),
		simpleAudit("get", "pods", "", "default", "web-0", "system:serviceaccount:default:app"),
		simpleAudit("list", "configmaps", "", "kube-system", "", "system:kube-controller-manager"),
		simpleAudit("update", "leases", "", "kube-system", "kube-scheduler", "system:kube-scheduler"),
		simpleAudit("watch", "endpoints", "", "default", "", "system:kube-proxy"),
		simpleAudit("create", "pods", "exec", "default", "web-0", "alice"),
		bindingCreate("view"),
		serviceCreate("ClusterIP", 8080),
	} {
		out = append(out, []byte(strings.ReplaceAll(s, "\n", "")))
	}
	return out
}

func BenchmarkAuditRules(b *testing.B) {
	eng := mustDefaults(b)
	data := benchAudit()
	var a AuditEvent
	ev := &Event{Audit: &a}
	var dst []Match
	size := 0
	for _, d := range data {
		size += len(d)
	}
	b.SetBytes(int64(size / len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; b.Loop(); i++ {
		if err := DecodeAuditEvent(data[i%len(data)], &a); err != nil {
			b.Fatal(err)
		}
		dst = eng.Evaluate(ev, dst[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	}
}
