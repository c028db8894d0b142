package sensor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
)

// Sink receives every alert, already encoded as one JSON object (no newline).
type Sink interface {
	WriteAlert(a *alerts.Alert, encoded []byte) error
}

// Config wires a Sensor. Engine is required; everything else is optional.
type Config struct {
	Engine      *rules.Engine
	RuleVersion string // e.g. a hash of the rule files, carried by every alert
	Enricher    *enrich.Enricher
	Detectors   []Detector
	Prevention  *Prevention
	// ScriptDrift, when set, checks (off the event path) whether an
	// interpreter runs a script from the container's writable layer.
	ScriptDrift *ScriptDrift
	Sinks       []Sink
	// Events, when set, receives every processed event as a JSON line.
	Events io.Writer

	Cluster, Node string
	QueueSize     int // events between the source and the pipeline (default 65536)
	AlertQueue    int // alerts between the pipeline and the sinks (default 4096)

	Counters *Counters // default: a new set
	Log      *slog.Logger
}

// Sensor is the pipeline. Run it once.
type Sensor struct {
	cfg    Config
	c      *Counters
	queue  chan rules.Event
	alertQ chan *alerts.Alert

	matches []rules.Match
	dets    []Detection
	events  *bufio.Writer

	scriptQ  chan scriptJob // nil without ScriptDrift
	scriptWG sync.WaitGroup
}

// New checks the configuration and returns a Sensor.
func New(cfg Config) (*Sensor, error) {
	if cfg.Engine == nil {
		return nil, errors.New("sensor: no rules engine")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 65536
	}
	if cfg.AlertQueue <= 0 {
		cfg.AlertQueue = 4096
	}
	if cfg.Counters == nil {
		cfg.Counters = &Counters{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Sensor{cfg: cfg, c: cfg.Counters,
		queue: make(chan rules.Event, cfg.QueueSize), alertQ: make(chan *alerts.Alert, cfg.AlertQueue)}
	if cfg.Events != nil {
		s.events = bufio.NewWriterSize(cfg.Events, 64<<10)
	}
	if cfg.ScriptDrift != nil {
		n := cfg.ScriptDrift.QueueSize
		if n <= 0 {
			n = 1024
		}
		s.scriptQ = make(chan scriptJob, n)
	}
	return s, nil
}

// Counters returns the pipeline's counters.
func (s *Sensor) Counters() *Counters { return s.cfg.Counters }

// Push hands one event to the pipeline without blocking: when the queue is
// full the event is dropped and counted. It is the Source callback.
func (s *Sensor) Push(ev *rules.Event) {
	s.c.EventsIn.Add(1)
	select {
	case s.queue <- *ev:
	default:
		s.c.EventsDropped.Add(1)
	}
}

// Run reads src until it ends or ctx is cancelled, then drains the queues
// and flushes the outputs. It returns the source's error, if any (a
// cancelled context is not an error).
func (s *Sensor) Run(ctx context.Context, src Source) error {
	var wg sync.WaitGroup
	if pv := s.cfg.Prevention; pv != nil && pv.Alive != nil {
		every := pv.PruneEvery
		if every <= 0 {
			every = time.Minute
		}
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go pv.pruneLoop(pctx, every, pv.Alive, func(err error) {
			s.cfg.Log.Warn("drift prevention: prune exited containers", "err", err)
		})
	}
	if s.scriptQ != nil {
		s.scriptWG.Add(1)
		go func() { defer s.scriptWG.Done(); s.checkScripts() }()
	}
	wg.Add(2)
	go func() { defer wg.Done(); s.work() }()
	go func() { defer wg.Done(); s.deliver() }()
	err := src.Read(ctx, s.Push)
	close(s.queue)
	wg.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return err
}

func (s *Sensor) work() {
	defer close(s.alertQ)
	defer func() {
		// Script checks still queued finish (and emit) before the alert
		// queue closes.
		if s.scriptQ != nil {
			close(s.scriptQ)
			s.scriptWG.Wait()
		}
	}()
	defer func() {
		if s.events != nil {
			if err := s.events.Flush(); err != nil {
				s.c.OutputErrors.Add(1)
			}
		}
	}()
	for ev := range s.queue {
		s.Process(&ev)
		if s.events != nil && len(s.queue) == 0 {
			if err := s.events.Flush(); err != nil {
				s.c.OutputErrors.Add(1)
			}
		}
	}
}

// Process runs one event through enrichment, the rules and the detectors,
// and queues its alerts. It is what the pipeline goroutine does; exported
// for benchmarks and tests that drive the pipeline synchronously.
func (s *Sensor) Process(ev *rules.Event) {
	s.c.EventsProcessed.Add(1)
	var info *enrich.Info
	if s.cfg.Enricher != nil {
		info = s.cfg.Enricher.Enrich(ev)
	} else if ev.Container.ID == "" {
		ev.Container.ID = "host"
	}
	if s.cfg.Prevention != nil && info == nil && ev.Container.ID != "host" {
		// Containers without a pod are considered on their first event
		// (pods are considered when enrichment attributes them).
		s.cfg.Prevention.Consider(ev.Container.ID, nil)
	}
	s.matches = s.cfg.Engine.Evaluate(ev, s.matches[:0])
	s.dets = s.dets[:0]
	for _, d := range s.cfg.Detectors {
		s.dets = d.Detect(ev, s.dets)
	}
	if s.scriptQ != nil {
		if script, interp, shebang, ok := s.cfg.ScriptDrift.Candidate(ev); ok {
			select {
			case s.scriptQ <- scriptJob{ev: *ev, info: info, script: script, interpreter: interp, shebang: shebang}:
			default:
				s.cfg.ScriptDrift.Dropped.Add(1)
			}
		}
	}
	if s.events != nil {
		s.writeEvent(ev)
	}
	if len(s.matches) == 0 && len(s.dets) == 0 {
		return
	}
	var evidence json.RawMessage
	// The probe flags an exec it killed (drift prevention) in Args.Flags.
	prevented := isExec(ev) && ev.Args.Flags&PreventedFlag != 0
	{
		j := ToJSON(ev)
		if prevented {
			j.Extra = map[string]any{"prevented": true}
		}
		evidence, _ = json.Marshal(j)
		if len(evidence) > alerts.MaxEvidenceBytes {
			j.Proc.Args, j.Proc.Cmdline, j.Proc.Ancestors = trunc(j.Proc.Args, 4096), trunc(j.Proc.Cmdline, 4096), nil
			evidence, _ = json.Marshal(j)
		}
	}
	for _, m := range s.matches {
		sev, err := alerts.SeverityFromPriority(m.Rule.Priority.String())
		if err != nil {
			sev = alerts.SeverityMedium
		}
		tactic, tech := alerts.MITREFromTags(m.Rule.Tags)
		title := m.Rule.FormatOutput(ev)
		var key []string
		if m.Rule.Name == driftRule {
			key = []string{ev.Proc.ExePath}
			if prevented {
				title = "Prevented: " + title
			}
		}
		s.emit(ev, info, m.Rule.Name, s.cfg.RuleVersion, sev, title, tactic, tech, evidence, key)
	}
	for _, d := range s.dets {
		s.emit(ev, info, d.Rule, "builtin", d.Severity, d.Title, d.Tactic, d.Technique, evidence, []string{d.Key})
	}
}

// checkScripts runs the queued script-drift checks (one worker: each check
// is a handful of procfs reads) and emits their alerts.
func (s *Sensor) checkScripts() {
	d := s.cfg.ScriptDrift
	for j := range s.scriptQ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		f, err := d.Check(ctx, &j.ev, j.script, j.shebang)
		cancel()
		if err != nil {
			s.cfg.Log.Debug("script drift check", "container", j.ev.Container.ID, "script", j.script, "err", err)
		}
		if f == nil {
			continue
		}
		det := scriptDetection(&j.ev, f, j.interpreter)
		jj := ToJSON(&j.ev)
		jj.Extra = map[string]any{"script": f.Script, "script_in_image": f.InImage, "interpreter": j.interpreter}
		evidence, _ := json.Marshal(jj)
		if len(evidence) > alerts.MaxEvidenceBytes {
			jj.Proc.Args, jj.Proc.Cmdline, jj.Proc.Ancestors = trunc(jj.Proc.Args, 4096), trunc(jj.Proc.Cmdline, 4096), nil
			evidence, _ = json.Marshal(jj)
		}
		s.emit(&j.ev, j.info, det.Rule, "builtin", det.Severity, det.Title, det.Tactic, det.Technique, evidence, []string{det.Key})
	}
}

// PreventedFlag is set in Args.Flags of an exec event the probe killed
// before it ran (probe.Prevented tests the same bit; the e2e tests check
// they agree).
const PreventedFlag = 0x1

// driftRule is the default rule whose alerts record a prevented exec.
const driftRule = "Drift - executable not in image"

func isExec(ev *rules.Event) bool {
	return ev.Type == rules.EventExecve || ev.Type == rules.EventExecveat
}

func (s *Sensor) emit(ev *rules.Event, info *enrich.Info, rule, version string, sev alerts.Severity, title, tactic, tech string,
	evidence json.RawMessage, key []string) {
	a := &alerts.Alert{
		ID:     uuid.Must(uuid.NewV7()).String(),
		Time:   time.Unix(0, ev.Time).UTC(),
		Source: alerts.SourceSensor, Rule: rule, RuleVersion: version, Severity: sev,
		Title:       alerts.CleanText(title, alerts.MaxTitleLen),
		MitreTactic: tactic, MitreTechnique: tech,
		Cluster: s.cfg.Cluster, Node: s.cfg.Node,
		Namespace: ev.K8s.Namespace, Pod: ev.K8s.PodName, Container: ev.Container.Name,
		ContainerID: ev.Container.ID, Image: ev.Container.Image,
		Evidence: evidence,
	}
	if y := a.Time.Year(); y < 2000 || y > 9999 {
		// No usable event time (a source that reports boot-relative
		// times, or none): the alert is stamped when it is raised.
		a.Time = time.Now().UTC()
	}
	if info != nil {
		a.ImageDigest, a.Workload = info.ImageDigest, info.Workload
	}
	for _, f := range []*string{&a.Namespace, &a.Pod, &a.Container, &a.ContainerID, &a.Image, &a.ImageDigest, &a.Workload} {
		*f = alerts.CleanText(*f, 512)
	}
	if len(key) > 0 {
		a.Fingerprint = alerts.Fingerprint(a, key...)
	}
	if err := a.Validate(); err != nil {
		s.c.AlertsInvalid.Add(1)
		s.cfg.Log.Error("alert failed validation (not sent)", "rule", rule, "err", err)
		return
	}
	s.c.AlertsRaised.Add(1)
	select {
	case s.alertQ <- a:
	default:
		s.c.AlertsDropped.Add(1)
	}
}

// BatchSink is a Sink that takes several alerts at once (the spool: one
// fsync per batch instead of one per alert).
type BatchSink interface {
	WriteAlerts(as []*alerts.Alert, encoded [][]byte) error
}

// maxDeliverBatch bounds how many queued alerts go to the sinks together.
const maxDeliverBatch = 256

func (s *Sensor) deliver() {
	var as []*alerts.Alert
	var encs [][]byte
	for a := range s.alertQ {
		as, encs = as[:0], encs[:0]
		as = append(as, a)
	more:
		for len(as) < maxDeliverBatch {
			select {
			case b, ok := <-s.alertQ:
				if !ok {
					break more
				}
				as = append(as, b)
			default:
				break more
			}
		}
		for _, a := range as {
			enc, err := json.Marshal(a)
			if err != nil {
				s.c.OutputErrors.Add(1)
				continue
			}
			encs = append(encs, enc)
		}
		if len(encs) != len(as) {
			continue // cannot happen for a validated alert; counted above
		}
		for _, sink := range s.cfg.Sinks {
			if bs, ok := sink.(BatchSink); ok {
				if err := bs.WriteAlerts(as, encs); err != nil {
					s.cfg.Log.Warn("alert output", "err", err)
				}
				continue
			}
			for i := range as {
				if err := sink.WriteAlert(as[i], encs[i]); err != nil {
					s.cfg.Log.Warn("alert output", "err", err)
				}
			}
		}
	}
}

func (s *Sensor) writeEvent(ev *rules.Event) {
	b, err := json.Marshal(ToJSON(ev))
	if err == nil {
		b = append(b, '\n')
		_, err = s.events.Write(b)
	}
	if err != nil {
		s.c.OutputErrors.Add(1)
		return
	}
	s.c.EventsWritten.Add(1)
}

// JSONLines writes alerts as JSON lines (stdout or a file), flushed per alert.
type JSONLines struct {
	mu sync.Mutex
	W  io.Writer
	C  *Counters
}

// WriteAlert implements Sink.
func (j *JSONLines) WriteAlert(_ *alerts.Alert, enc []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	b := make([]byte, 0, len(enc)+1)
	b = append(append(b, enc...), '\n')
	if _, err := j.W.Write(b); err != nil {
		if j.C != nil {
			j.C.OutputErrors.Add(1)
		}
		return fmt.Errorf("write alert: %w", err)
	}
	if j.C != nil {
		j.C.AlertsWritten.Add(1)
	}
	return nil
}
