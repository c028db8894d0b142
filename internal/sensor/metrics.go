package sensor

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters are the pipeline's counters. They are plain atomics on the hot
// path; Register exposes them to Prometheus as counter functions, so
// counting costs an atomic add, not a label lookup.
type Counters struct {
	EventsIn         atomic.Uint64 // handed over by the source
	EventsDropped    atomic.Uint64 // event queue full
	EventsProcessed  atomic.Uint64
	EventsWritten    atomic.Uint64 // raw events written (--events)
	AlertsRaised     atomic.Uint64
	AlertsDropped    atomic.Uint64 // alert queue full
	AlertsWritten    atomic.Uint64 // to the JSON-lines output
	AlertsSpooled    atomic.Uint64 // accepted by the disk spool
	AlertsSpoolFull  atomic.Uint64 // refused by the disk spool (full)
	AlertsInvalid    atomic.Uint64 // failed alerts.Validate (a bug; counted, not sent)
	AlertsDelivered  atomic.Uint64 // acknowledged by central (accepted + duplicates)
	DeliveryFailures atomic.Uint64 // POST attempts that failed
	AlertsRejected   atomic.Uint64 // refused by central with 400 one by one (skipped)
	OutputErrors     atomic.Uint64
	Prevented        atomic.Uint64 // containers switched to prevention mode
}

// Register exposes the counters (and the extra gauges, e.g. spool bytes,
// enrichment stats) under the bulwark_sensor_ prefix.
func (c *Counters) Register(reg prometheus.Registerer, gauges map[string]func() float64) error {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "bulwark", Subsystem: "sensor", Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		counter("events_total", "Events received from the source.", &c.EventsIn),
		counter("events_dropped_total", "Events dropped because the event queue was full.", &c.EventsDropped),
		counter("events_processed_total", "Events enriched and evaluated.", &c.EventsProcessed),
		counter("events_written_total", "Raw events written to the events output.", &c.EventsWritten),
		counter("alerts_total", "Alerts raised.", &c.AlertsRaised),
		counter("alerts_dropped_total", "Alerts dropped because the alert queue was full.", &c.AlertsDropped),
		counter("alerts_written_total", "Alerts written to the JSON-lines output.", &c.AlertsWritten),
		counter("alerts_spooled_total", "Alerts accepted by the disk spool.", &c.AlertsSpooled),
		counter("alerts_spool_full_total", "Alerts refused because the disk spool was full.", &c.AlertsSpoolFull),
		counter("alerts_invalid_total", "Alerts that failed validation and were not sent.", &c.AlertsInvalid),
		counter("alerts_delivered_total", "Alerts acknowledged by central.", &c.AlertsDelivered),
		counter("alerts_rejected_total", "Alerts central refused as invalid (skipped).", &c.AlertsRejected),
		counter("delivery_failures_total", "Failed deliveries to central (retried).", &c.DeliveryFailures),
		counter("output_errors_total", "Errors writing alerts or events to an output.", &c.OutputErrors),
		counter("prevention_enabled_total", "Containers switched to drift-prevention mode.", &c.Prevented),
	}
	for name, f := range gauges {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "bulwark", Subsystem: "sensor", Name: name, Help: name}, f))
	}
	for _, col := range cs {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	return nil
}
