package sensor

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/intel"
)

// Detection is a built-in detector's finding: like a rule match, but from
// code that needs state or large lists the rules language cannot express.
type Detection struct {
	Rule      string
	Severity  alerts.Severity
	Title     string
	Tactic    string
	Technique string
	Key       string // fingerprint key evidence (e.g. the indicator)
}

// Detector is a built-in detector run on every event after the rules.
// Detect must not allocate when it finds nothing.
type Detector interface {
	Detect(ev *rules.Event, dst []Detection) []Detection
}

// Built-in detector rule names (they appear as the alert's rule).
const (
	RuleIntel    = "Connection to threat-intel indicator"
	RuleListener = "Unusual listening port"
)

// IntelDetector alerts on a connect (or sendto) to an address on a loaded
// threat-intelligence list. Connections to the cloud metadata service are
// the default rule "Cloud metadata service contacted", not this detector.
type IntelDetector struct {
	Sets func() *intel.Set
}

// Detect implements Detector.
func (d *IntelDetector) Detect(ev *rules.Event, dst []Detection) []Detection {
	if ev.Type != rules.EventConnect && ev.Type != rules.EventSendto {
		return dst
	}
	m, ok := d.Sets().Lookup(ev.FD.RIP)
	if !ok {
		return dst
	}
	return append(dst, Detection{
		Rule:     RuleIntel,
		Severity: alerts.SeverityHigh,
		Title: fmt.Sprintf("Connection to %s listed in %s (indicator=%s proc=%s connection=%s container=%s)",
			ev.FD.RIP, m.List, m.Indicator, ev.Proc.Name, ev.FD.Name, ev.Container.ID),
		Tactic: "TA0011", Technique: "T1071",
		Key: m.Indicator,
	})
}

// ListenerDetector alerts when a container listens on a port that is
// neither allowed for its image nor learned: for LearnFor after the first
// listen seen from an image, every port it listens on is learned as normal;
// after that window, a new port is an alert (and is then learned, so it
// alerts once per image and port). Learned ports survive restarts through
// Load and Save (a small versioned state file, see listener_state.go). Static allowances: ParseAllowListeners("*nginx*=80,443").
type ListenerDetector struct {
	LearnFor time.Duration
	Now      func() time.Time

	mu      sync.Mutex
	allowed []allowRule
	images  map[string]*imagePorts
	dirty   bool // learned state changed since the last Save
}

type allowRule struct {
	glob  string
	ports map[int64]bool
}

type imagePorts struct {
	since time.Time
	ports map[int64]bool
}

// maxLearnedImages bounds memory: beyond it, unknown images are not tracked
// (and never alert).
const maxLearnedImages = 4096

// maxPortsPerImage bounds one image's learned ports (memory and state file).
const maxPortsPerImage = 1024

// ParseAllowListeners reads "image-glob=port,port" entries.
func (d *ListenerDetector) ParseAllowListeners(specs []string) error {
	for _, s := range specs {
		g, ports, ok := strings.Cut(s, "=")
		if !ok || g == "" {
			return fmt.Errorf("allowed listener %q: want IMAGE-GLOB=PORT[,PORT...]", s)
		}
		r := allowRule{glob: g, ports: map[int64]bool{}}
		for _, p := range strings.Split(ports, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
			if err != nil {
				return fmt.Errorf("allowed listener %q: port %q", s, p)
			}
			r.ports[int64(n)] = true
		}
		d.allowed = append(d.allowed, r)
	}
	return nil
}

// Detect implements Detector.
func (d *ListenerDetector) Detect(ev *rules.Event, dst []Detection) []Detection {
	if ev.Type != rules.EventListen || ev.Container.ID == "host" || ev.Container.ID == "" {
		return dst
	}
	port := ev.FD.SPort
	image := ev.Container.Image
	if image == "" {
		image = "container:" + ev.Container.ID // not attributed: learn per container
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.allowed {
		if glob(r.glob, image) && r.ports[port] {
			return dst
		}
	}
	if d.images == nil {
		d.images = map[string]*imagePorts{}
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	ip := d.images[image]
	if ip == nil {
		if len(d.images) >= maxLearnedImages {
			return dst
		}
		ip = &imagePorts{since: now(), ports: map[int64]bool{}}
		d.images[image] = ip
		d.dirty = true
	}
	if ip.ports[port] {
		return dst
	}
	if len(ip.ports) >= maxPortsPerImage {
		return dst // bounded: an image listening on this many ports is not learned further
	}
	ip.ports[port] = true
	d.dirty = true
	if now().Sub(ip.since) < d.LearnFor {
		return dst
	}
	return append(dst, Detection{
		Rule:     RuleListener,
		Severity: alerts.SeverityMedium,
		Title: fmt.Sprintf("Container listens on a port not seen for its image (port=%d proc=%s image=%s container=%s)",
			port, ev.Proc.Name, ev.Container.Image, ev.Container.ID),
		Tactic: "TA0011", Technique: "T1571",
		Key: strconv.FormatInt(port, 10),
	})
}
