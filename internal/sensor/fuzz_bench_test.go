package sensor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/intel"
)

// FuzzReplay feeds arbitrary bytes as a recorded events file: no panic, every
// line is either an event or a counted ErrBadEvent, and decoded events
// survive a ToJSON/DecodeEvent round trip.
func FuzzReplay(f *testing.F) {
	b, err := os.ReadFile("testdata/events.jsonl")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"type":"execve","proc":{"argv":[]},"fd":{"typechar":"ab"}}`))
	f.Add([]byte("{\"type\":\"connect\",\"fd\":{\"rip\":\"::ffff:1.2.3.4\",\"typechar\":\"6\"}}\n\n\r\n{"))
	eng := defaultEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &Replay{R: bytes.NewReader(data), OnError: func(line int, err error) {
			if !errors.Is(err, ErrBadEvent) {
				t.Fatalf("line %d: %v", line, err)
			}
		}}
		var dst []rules.Match
		err := r.Read(context.Background(), func(ev *rules.Event) {
			dst = eng.Evaluate(ev, dst[:0])
			j := ToJSON(ev)
			var back rules.Event
			enc, err := json.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			if err := DecodeEvent(enc, &back); err != nil {
				t.Fatalf("round trip of %s: %v", enc, err)
			}
			if back.Type != ev.Type || back.Proc.Cmdline != ev.Proc.Cmdline || back.FD.RIP != ev.FD.RIP {
				t.Fatalf("round trip changed the event: %+v vs %+v", back, *ev)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.Events+r.Bad > r.Lines {
			t.Fatalf("%d events + %d bad > %d lines", r.Events, r.Bad, r.Lines)
		}
	})
}

// A line over the limit is one bad line, read without holding it whole.
func TestReplayLongLine(t *testing.T) {
	good := `{"type":"execve","proc":{"name":"ls"},"user":{"uid":0,"loginuid":-1,"gid":0},"container":{"id":"host"}}`
	data := good + "\n" + string(bytes.Repeat([]byte("x"), 3*maxEventLine)) + "\n" + good
	r := &Replay{R: bytes.NewReader([]byte(data))}
	var lines []int
	r.OnError = func(line int, err error) { lines = append(lines, line) }
	if err := r.Read(context.Background(), func(*rules.Event) {}); err != nil {
		t.Fatal(err)
	}
	if r.Events != 2 || r.Bad != 1 || len(lines) != 1 || lines[0] != 2 {
		t.Fatalf("events=%d bad=%d lines=%v", r.Events, r.Bad, lines)
	}
}

// syntheticEvents is a mix shaped like a busy node: mostly opens and execs of
// ordinary programs in containers, some connects, a few host events — the
// near misses of the default rules, so the rules do real work.
func syntheticEvents() []rules.Event {
	var evs []rules.Event
	ids := []string{c1, c2, "host"}
	for i := range 1024 {
		id := ids[i%3]
		var ev rules.Event
		switch i % 8 {
		case 0, 1, 2:
			ev = rules.Event{Type: rules.EventOpenat, FD: rules.FD{Name: fmt.Sprintf("/usr/lib/x86_64-linux-gnu/lib%d.so", i), TypeChar: 'f'}, Args: rules.Args{Flags: 0}}
			ev.Proc.Name = "nginx"
		case 3:
			ev = rules.Event{Type: rules.EventOpenat, FD: rules.FD{Name: "/var/log/nginx/access.log", TypeChar: 'f'}, Args: rules.Args{Flags: rules.OpenWrite}}
			ev.Proc.Name = "nginx"
		case 4, 5:
			ev = rules.Event{Type: rules.EventExecve}
			ev.Proc.Name = "ls"
			ev.Proc.ExePath = "/bin/ls"
			ev.Proc.SetArgv([]string{"ls", "-la", "/tmp"})
			ev.Proc.Ancestors = []rules.Ancestor{{Name: "sh", Cmdline: "sh -c ls"}, {Name: "containerd-shim"}}
		case 6:
			ev = rules.Event{Type: rules.EventConnect, FD: rules.FD{TypeChar: '4', SIP: netip.MustParseAddr("10.0.0.2"), RIP: netip.AddrFrom4([4]byte{93, 184, byte(i), 34}), SPort: 40000, RPort: 443, L4Proto: "tcp"}}
			ev.Proc.Name = "curl"
		case 7:
			ev = rules.Event{Type: rules.EventClone}
			ev.Proc.Name = "java"
		}
		ev.Time = 1_790_000_000_000_000_000 + int64(i)
		ev.Container.ID = id
		ev.User.LoginUID = -1
		evs = append(evs, ev)
	}
	return evs
}

func benchSensor(b *testing.B) *Sensor {
	k := enrich.NewKube(nil, "", nil)
	k.Observe(testPod(c1))
	en := enrich.New(enrich.Config{Resolvers: []enrich.Resolver{k}})
	set := benchIntel(b)
	s, err := New(Config{Engine: defaultEngine(b), Enricher: en,
		Detectors: []Detector{&IntelDetector{Sets: func() *intel.Set { return set }}, &ListenerDetector{}}})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchIntel(b *testing.B) *intel.Set {
	lists, err := intel.DefaultLists()
	if err != nil {
		b.Fatal(err)
	}
	f, _ := os.Open("testdata/intel.txt")
	defer f.Close()
	l, _ := intel.Parse(f, "intel.txt")
	return intel.Build(context.Background(), append(lists, l), intel.BuildOptions{})
}

// BenchmarkPipeline: one goroutine doing what the pipeline goroutine does per
// event — enrichment (cache hit), default rules, built-in detectors — on
// synthetic non-alerting events.
func BenchmarkPipeline(b *testing.B) {
	s := benchSensor(b)
	evs := syntheticEvents()
	// Warm the enrichment cache.
	for i := range evs {
		ev := evs[i]
		s.Process(&ev)
	}
	if n := s.c.AlertsRaised.Load(); n != 0 {
		b.Fatalf("synthetic events raised %d alerts; they are meant as near misses", n)
	}
	b.ReportAllocs()
	i := 0
	var ev rules.Event
	cpu0 := cpuTime()
	for b.Loop() {
		ev = evs[i&1023]
		s.Process(&ev)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
}

// BenchmarkEndToEnd: a producer pushes through the bounded queue at a fixed
// rate (as the ring-buffer reader would, in bursts of 1000) while the
// pipeline goroutine consumes; reports how many events the queue dropped.
// The target is 100k events/s without drops.
func BenchmarkEndToEnd(b *testing.B) {
	for _, rate := range []int{100_000, 300_000} {
		b.Run(fmt.Sprintf("rate=%dk", rate/1000), func(b *testing.B) {
			s := benchSensor(b)
			evs := syntheticEvents()
			b.ReportAllocs()
			const burst = 1000
			src := sourceFunc(func(ctx context.Context, fn func(*rules.Event)) error {
				start := time.Now()
				for i := 0; i < b.N; i++ {
					fn(&evs[i&1023])
					if i%burst == burst-1 {
						due := start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))
						time.Sleep(time.Until(due))
					}
				}
				return nil
			})
			cpu0 := cpuTime()
			b.ResetTimer()
			if err := s.Run(context.Background(), src); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(s.c.EventsDropped.Load()), "dropped")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
		})
	}
}

// cpuTime is this process's user+system CPU time in nanoseconds: on a
// machine shared with other jobs, wall time per event overstates the cost.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
