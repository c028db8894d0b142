package admission

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's Prometheus series. A nil *Metrics records
// nothing, so parts can be used without a registry.
type Metrics struct {
	decisions      *prometheus.CounterVec   // verdict, kind, operation
	violations     *prometheus.CounterVec   // rule, mode
	latency        *prometheus.HistogramVec // operation
	badRequests    *prometheus.CounterVec   // reason
	cacheLookups   *prometheus.CounterVec   // result: hit, miss, stale
	centralErrors  prometheus.Counter
	centralLat     prometheus.Histogram
	recordsDropped prometheus.Counter
	recordsSent    *prometheus.CounterVec // kind: decision, alert
	policiesLoaded prometheus.Gauge
	certExpiry     prometheus.Gauge
	fixes          *prometheus.CounterVec
	mutations      *prometheus.CounterVec
	hot            hotSeries
}

// hotSeries are the children of the series every review counts, resolved
// on first use and kept: WithLabelValues hashes the label values and
// looks them up under a lock at every call, code and data a review would
// otherwise touch with cold caches. A series still appears in /metrics
// only once it has counted, as before.
type hotSeries struct {
	decisions [len(hotVerdicts)][len(hotKinds)][len(hotOps)]atomic.Pointer[prometheus.Counter]
	latency   [len(hotOps)]atomic.Pointer[prometheus.Observer]
	cache     [len(hotCache)]atomic.Pointer[prometheus.Counter]
}

// The label values of the hot series; others go through WithLabelValues.
var (
	hotVerdicts = [...]string{"allow", "audit", "warn", "deny"}
	hotKinds    = [...]string{"Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob",
		"ReplicationController", "PodExecOptions", "PodAttachOptions", "PodPortForwardOptions"}
	hotOps   = [...]string{"CREATE", "UPDATE", "DELETE", "CONNECT"}
	hotCache = [...]string{"hit", "miss", "stale"}
)

// decided is the decisions counter of (verdict, kind, operation).
func (m *Metrics) decided(verdict, kind, op string) prometheus.Counter {
	vi, ki, oi := slices.Index(hotVerdicts[:], verdict), slices.Index(hotKinds[:], kind), slices.Index(hotOps[:], op)
	if vi < 0 || ki < 0 || oi < 0 {
		return m.decisions.WithLabelValues(verdict, kind, op)
	}
	return resolved(&m.hot.decisions[vi][ki][oi], func() prometheus.Counter { return m.decisions.WithLabelValues(verdict, kind, op) })
}

// reviewLatency is the latency histogram of an operation.
func (m *Metrics) reviewLatency(op string) prometheus.Observer {
	oi := slices.Index(hotOps[:], op)
	if oi < 0 {
		return m.latency.WithLabelValues(op)
	}
	return resolved(&m.hot.latency[oi], func() prometheus.Observer { return m.latency.WithLabelValues(op) })
}

// resolved returns the child held by p, resolving it on first use (two
// racing first uses resolve the same child).
func resolved[T any](p *atomic.Pointer[T], resolve func() T) T {
	if c := p.Load(); c != nil {
		return *c
	}
	c := resolve()
	p.Store(&c)
	return c
}

func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_decisions_total",
			Help: "Admission decisions by verdict (allow, audit, warn, deny, error), kind and operation."}, []string{"verdict", "kind", "operation"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_violations_total",
			Help: "Rule violations found, by rule family and policy mode."}, []string{"rule", "mode"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bulwark_admission_review_duration_seconds",
			Help:    "Time from request read to response written.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"operation"}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_bad_requests_total",
			Help: "AdmissionReview bodies refused (the API server applies its failurePolicy)."}, []string{"reason"}),
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_verdict_cache_total",
			Help: "Image verdict cache lookups by result (hit, miss, stale)."}, []string{"result"}),
		centralErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_admission_central_errors_total",
			Help: "Failed calls to central's findings API."}),
		centralLat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_admission_central_duration_seconds",
			Help: "Latency of central's findings API.", Buckets: prometheus.DefBuckets}),
		recordsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_admission_records_dropped_total",
			Help: "Decision records and alerts dropped because the queue to central was full."}),
		recordsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_records_sent_total",
			Help: "Decision records and alerts delivered to central."}, []string{"kind"}),
		policiesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_admission_policies",
			Help: "Policies in force."}),
		certExpiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_admission_certificate_expiry_timestamp_seconds",
			Help: "When the serving certificate expires (Unix time)."}),
		fixes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_fixes_total",
			Help: "Controls fixed by the mutating webhook, by control."}, []string{"control"}),
		mutations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_admission_mutations_total",
			Help: "Mutating reviews by outcome (patched, unchanged, error: allowed unchanged)."}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.violations, m.latency, m.badRequests, m.cacheLookups, m.centralErrors,
			m.centralLat, m.recordsDropped, m.recordsSent, m.policiesLoaded, m.certExpiry, m.fixes, m.mutations)
	}
	return m
}

func (m *Metrics) cache(result string) {
	if m != nil {
		if i := slices.Index(hotCache[:], result); i >= 0 {
			resolved(&m.hot.cache[i], func() prometheus.Counter { return m.cacheLookups.WithLabelValues(result) }).Inc()
			return
		}
		m.cacheLookups.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) centralError() {
	if m != nil {
		m.centralErrors.Inc()
	}
}

func (m *Metrics) centralLatency(d time.Duration) {
	if m != nil {
		m.centralLat.Observe(d.Seconds())
	}
}
