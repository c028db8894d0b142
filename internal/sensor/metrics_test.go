package sensor

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-security/bulwark/internal/rules"
)

// The counters a replay moved are what Prometheus gathers.
func TestMetricsExported(t *testing.T) {
	s, _ := New(Config{Engine: defaultEngine(t), QueueSize: 2})
	ev := rules.Event{Type: rules.EventOpenat, Container: rules.Container{ID: c1}}
	for range 5 {
		s.Push(&ev) // queue of 2, nobody consuming: 3 dropped
	}
	reg := prometheus.NewRegistry()
	if err := s.Counters().Register(reg, map[string]func() float64{"spool_bytes": func() float64 { return 42 }}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	for name, want := range map[string]float64{
		"bulwark_sensor_events_total": 5, "bulwark_sensor_events_dropped_total": 3,
		"bulwark_sensor_alerts_dropped_total": 0, "bulwark_sensor_spool_bytes": 42,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	// Registering twice in one registry is an error, not a silent duplicate.
	if err := s.Counters().Register(reg, nil); err == nil {
		t.Error("second registration accepted")
	}
}
