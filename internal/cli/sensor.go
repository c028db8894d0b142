package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/k8s"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich"
	"github.com/bulwark-security/bulwark/internal/sensor/intel"
	"github.com/bulwark-security/bulwark/internal/sensor/probe"
	"github.com/bulwark-security/bulwark/internal/sensor/spool"
)

type sensorFlags struct {
	rules           []string
	noDefaultRules  bool
	output          string
	events          string
	server, token   string
	ca              string
	spoolDir        string
	spoolMax        int64
	metricsAddr     string
	node, cluster   string
	kubeconfig      string
	kubeContext     string
	noKube          bool
	intel           []string
	noDefaultIntel  bool
	intelRefresh    time.Duration
	dnsTimeout      time.Duration
	listenLearn     time.Duration
	allowListeners  []string
	driftPrevent    []string
	queueSize       int
	ringBufferBytes uint32
	runtimeState    []string
	noRuntimeState  bool
	criSocket       string
	noCRI           bool
	stateDir        string
	noScriptDrift   bool
	preventUnknown  bool
	hostRoot        string
}

func (a *app) sensorCmd() *cobra.Command {
	f := &sensorFlags{}
	cmd := &cobra.Command{
		Use:   "sensor",
		Short: "Watch this node's containers with eBPF and raise runtime alerts (root)",
		Long: `Run the node sensor: eBPF programs report what processes do (exec, file
writes and sensitive reads, connects, listeners, setuid, ptrace, namespaces,
module loads, memfd executions, drift); each event is attributed to its
container and pod, evaluated by the Falco-format rules (Bulwark's defaults plus
--rules files) and by built-in detectors (threat-intel lists on connect,
unusual listeners), and alerts go out as JSON lines (--output, stdout by
default) and to central (--server) through a disk spool (--spool-dir) that
survives outages and restarts.

Every queue is bounded; drops are counted and exported on --metrics-addr
(/metrics, Prometheus). Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE)
and a kernel with BTF.

Pods: the sensor watches this node's pods through the Kubernetes API
(in-cluster service account, or --kubeconfig) with a field selector on
--node (env NODE_NAME in a DaemonSet); it needs get/list/watch on pods.

Drift prevention: --drift-prevent SELECTOR kills, before it runs, any
executable not in the image in matching containers (keys namespace, image,
pod, container; '*' globs; several keys in one selector must all match).
Scripts from a container's writable layer run by an interpreter (./x.sh,
sh /tmp/x.sh, python3 /tmp/x.py) are detected, not prevented.

Containers: each container is named by up to three sources, asked in this
order and merged field by field (an earlier source wins):
  1. the runtime's state files (--runtime-state): runc/crun state and the
     CRI annotations containerd and CRI-O write into each container's OCI
     config — local reads, also for containers outside Kubernetes;
  2. the runtime's CRI socket (--cri-socket; by default the first of
     /run/containerd/containerd.sock, /run/crio/crio.sock,
     /var/run/cri-dockerd.sock that exists): pod uid, pod labels and the
     image digest the runtime resolved, asked once per container off the
     event path;
  3. the Kubernetes API (pod informer): workload, labels, digest.
--no-runtime-state, --no-cri and --no-kube turn a source off.

Learned listener ports are kept in --state-dir across restarts.`,
		Example: `  # alerts as JSON lines on stdout, default rules
  sudo bulwark sensor

  # in a DaemonSet: to central, with a spool, metrics and drift prevention in prod
  bulwark sensor --server https://central:8443 --token $TOKEN --server-ca /etc/bulwark/ca.pem \
    --spool-dir /var/lib/bulwark/spool --metrics-addr :9464 --node $NODE_NAME \
    --drift-prevent namespace=prod --intel /etc/bulwark/tor-exits.txt

  # run rules over recorded events (see 'bulwark sensor replay --help')
  bulwark sensor replay --rules my-rules.yaml events.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runSensor(cmd.Context(), cmd, f, "") },
	}
	a.sensorFlags(cmd, f, true)
	replay := &cobra.Command{
		Use:   "replay FILE",
		Short: "Run the rules and detectors over recorded events (JSON lines; - for stdin)",
		Long: `Replay recorded events — one JSON object per line, the format --events
writes — through the same pipeline as the live sensor: enrichment (when
--kubeconfig is given), the rules, the built-in detectors and the outputs.
Useful to test rules before deploying them, and in CI. Lines that do not
decode are reported with their line number and skipped; the command fails
(exit 2) when any line was bad.

Event format (keys as Falco's fields):
  {"time":"2026-11-27T10:00:00Z","type":"execve",
   "proc":{"name":"bash","exepath":"/bin/bash","argv":["bash","-c","id"],"pid":42,"ppid":1},
   "user":{"uid":0,"loginuid":-1,"gid":0},
   "fd":{"name":"/etc/shadow","typechar":"f"},
   "container":{"id":"3f9a…"},"k8s":{"ns":"prod","pod":"web-1"}}`,
		Example: `  bulwark sensor replay --rules my-rules.yaml recorded.jsonl
  bulwark sensor --events events.jsonl   # record (then Ctrl-C)
  bulwark sensor replay --no-default-rules --rules team.yaml events.jsonl`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runSensor(cmd.Context(), cmd, f, args[0]) },
	}
	a.sensorFlags(replay, f, false)
	cmd.AddCommand(replay)
	return cmd
}

func (a *app) sensorFlags(cmd *cobra.Command, f *sensorFlags, live bool) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.rules, "rules", nil, "Falco-format rules file (repeatable; applied after the defaults)")
	fl.BoolVar(&f.noDefaultRules, "no-default-rules", false, "do not load Bulwark's default runtime rules")
	fl.StringVarP(&f.output, "output", "o", "-", "write alerts as JSON lines to this file (- for stdout, empty for none)")
	fl.StringVar(&f.events, "events", "", "also write every event as JSON lines to this file (- for stdout)")
	fl.StringVar(&f.server, "server", "", "central's URL; alerts are posted to /api/v1/alerts")
	fl.StringVar(&f.token, "token", "", "agent API token for --server")
	fl.StringVar(&f.ca, "server-ca", "", "PEM file with the CA that signed --server's certificate")
	// --ca and --kube-context were this command's first spellings; the other
	// agents (admission, respond, posture) say --server-ca and --context.
	fl.StringVar(&f.ca, "ca", "", "")
	_ = fl.MarkDeprecated("ca", "use --server-ca")
	fl.StringVar(&f.spoolDir, "spool-dir", "/var/lib/bulwark/sensor-spool", "disk spool for alerts on their way to --server")
	fl.Int64Var(&f.spoolMax, "spool-max-bytes", 256<<20, "size cap of the spool; beyond it new alerts are refused and counted")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on this address (e.g. :9464)")
	fl.StringVar(&f.node, "node", "", "this node's name (default: env NODE_NAME, then the host name)")
	fl.StringVar(&f.cluster, "cluster", "", "cluster name carried by every alert")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for pod enrichment (default: in-cluster, $KUBECONFIG, ~/.kube/config)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context")
	fl.StringVar(&f.kubeContext, "kube-context", "", "")
	_ = fl.MarkDeprecated("kube-context", "use --context")
	fl.BoolVar(&f.noKube, "no-kube", false, "do not attribute containers to pods through the Kubernetes API")
	fl.StringSliceVar(&f.intel, "intel", nil, "threat-intel list: IPs, CIDRs, domains; plain, TOR exit list or CSV (repeatable)")
	fl.BoolVar(&f.noDefaultIntel, "no-default-intel", false, "do not load the shipped mining-pool list")
	fl.DurationVar(&f.intelRefresh, "intel-refresh", time.Hour, "re-read intel files and re-resolve their domains this often (0: never)")
	fl.DurationVar(&f.dnsTimeout, "dns-timeout", 2*time.Second, "timeout per domain name resolution of intel lists")
	fl.DurationVar(&f.listenLearn, "listen-learn", 10*time.Minute, "learn an image's listening ports this long after its first listen; later new ports alert")
	fl.StringSliceVar(&f.allowListeners, "allow-listener", nil, "IMAGE-GLOB=PORT[,PORT] always allowed to listen (repeatable)")
	fl.StringSliceVar(&f.runtimeState, "runtime-state", enrich.DefaultRuntimeRoots(), "OCI runtime state roots read for container names and images (runc/crun state + CRI annotations; repeatable)")
	fl.BoolVar(&f.noRuntimeState, "no-runtime-state", false, "do not read the container runtime's state for attribution")
	fl.StringVar(&f.criSocket, "cri-socket", "", "container runtime's CRI socket asked for pod, image and digest (default: the first found of "+
		strings.Join(enrich.DefaultCRISockets(), ", ")+")")
	fl.BoolVar(&f.noCRI, "no-cri", false, "do not ask the container runtime's CRI socket for attribution")
	fl.IntVar(&f.queueSize, "queue-size", 65536, "events queued between the ring buffer and the rules; beyond it events are dropped and counted")
	if live {
		fl.StringSliceVar(&f.driftPrevent, "drift-prevent", nil, "kill drift executions in containers matching namespace=G,image=G,pod=G,container=G (repeatable)")
		fl.Uint32Var(&f.ringBufferBytes, "ring-buffer-bytes", 0, "BPF ring buffer size (power of two; default the probe's)")
		fl.BoolVar(&f.preventUnknown, "drift-prevent-unknown", false, "with --drift-prevent: kill drift in containers not yet attributed (from their first exec), releasing those no selector matches")
		fl.BoolVar(&f.noScriptDrift, "no-script-drift", false, "do not check whether interpreters run scripts from a container's writable layer")
		fl.StringVar(&f.hostRoot, "host-root", "", "the host's root as seen by the sensor, for overlay layer paths (default /proc/1/root when readable, else /)")
		fl.StringVar(&f.stateDir, "state-dir", "/var/lib/bulwark/sensor-state", "directory for the sensor's learned state (listener baselines); empty: keep it in memory only")
	}
}

// ruleVersion identifies the rule set: a hash of every file's bytes.
func ruleVersion(files []rules.RuleFile) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s %d\n", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func (a *app) runSensor(ctx context.Context, cmd *cobra.Command, f *sensorFlags, replayFile string) error {
	log := a.log
	var files []rules.RuleFile
	if !f.noDefaultRules {
		d, err := rules.DefaultRuleFiles()
		if err != nil {
			return err
		}
		files = append(files, d...)
	}
	for _, p := range f.rules {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("--rules: %w", err)
		}
		files = append(files, rules.RuleFile{Name: p, Data: b})
	}
	if len(files) == 0 {
		return errors.New("no rules: --no-default-rules needs at least one --rules file")
	}
	eng, err := rules.Compile(files)
	if err != nil {
		return err
	}
	for _, s := range eng.Skipped() {
		log.Warn("rule skipped", "rule", s.Rule, "file", s.File, "line", s.Line, "why", s.Reason)
	}
	node := f.node
	if node == "" {
		node = a.env.Getenv("NODE_NAME")
	}
	if node == "" && replayFile == "" {
		node, _ = os.Hostname()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	counters := &sensor.Counters{}
	cfg := sensor.Config{Engine: eng, RuleVersion: ruleVersion(files), Cluster: f.cluster, Node: node,
		QueueSize: f.queueSize, Counters: counters, Log: log}

	// Outputs.
	closeAll := []func() error{}
	defer func() {
		for _, c := range closeAll {
			c()
		}
	}()
	open := func(path string) (io.Writer, error) {
		if path == "-" {
			return cmd.OutOrStdout(), nil
		}
		fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		closeAll = append(closeAll, fh.Close)
		return fh, nil
	}
	if f.output != "" {
		w, err := open(f.output)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		cfg.Sinks = append(cfg.Sinks, &sensor.JSONLines{W: w, C: counters})
	}
	if f.events != "" {
		w, err := open(f.events)
		if err != nil {
			return fmt.Errorf("--events: %w", err)
		}
		cfg.Events = w
	}
	var sp *spool.Spool
	if f.server != "" {
		client, base, err := centralClient(f.server, "--server-ca", f.ca, 30*time.Second)
		if err != nil {
			return err
		}
		if f.token == "" {
			return errors.New("--server needs --token (an agent token)")
		}
		sp, err = spool.Open(f.spoolDir, spool.Options{MaxBytes: f.spoolMax})
		if err != nil {
			return fmt.Errorf("--spool-dir: %w", err)
		}
		closeAll = append(closeAll, sp.Close)
		if st := sp.Stats(); st.CorruptRecords > 0 {
			log.Warn("spool: damaged records skipped", "records", st.CorruptRecords, "bytes", st.CorruptBytes)
		}
		cfg.Sinks = append(cfg.Sinks, &sensor.SpoolSink{Spool: sp, C: counters})
		fw := &sensor.Forwarder{Spool: sp, URL: base, Token: f.token, Client: client, C: counters, Log: log}
		fctx, fcancel := context.WithCancel(context.Background())
		fdone := make(chan struct{})
		go func() { defer close(fdone); fw.Run(fctx) }()
		// Stop forwarding (before the spool closes) when the command ends;
		// in replay mode first give the forwarder a moment to deliver what
		// was just spooled. What is left stays in the spool for next time.
		closeAll = append([]func() error{func() error {
			if replayFile != "" {
				drainSpool(ctx, sp, 10*time.Second)
			}
			fcancel()
			<-fdone
			return nil
		}}, closeAll...)
	}

	// Threat intel and listeners.
	il := intel.NewLoader(f.intel, !f.noDefaultIntel, intel.BuildOptions{Resolver: intel.SystemResolver(), Timeout: f.dnsTimeout}, log)
	if err := il.Refresh(ctx); err != nil {
		return fmt.Errorf("--intel: %w", err)
	}
	if f.intelRefresh > 0 && replayFile == "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(f.intelRefresh)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := il.Refresh(ctx); err != nil {
						log.Warn("intel refresh failed; keeping the previous lists", "err", err)
					}
				}
			}
		}()
	}
	ld := &sensor.ListenerDetector{LearnFor: f.listenLearn}
	if err := ld.ParseAllowListeners(f.allowListeners); err != nil {
		return fmt.Errorf("--allow-listener: %w", err)
	}
	if f.stateDir != "" && replayFile == "" {
		// The learned listener baseline survives restarts; a replay never
		// touches the live sensor's baseline.
		path := filepath.Join(f.stateDir, "listeners.json")
		if err := ld.Load(path); err != nil {
			log.Warn("listener baseline not loaded; learning from scratch", "err", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); ld.RunPersistence(ctx, path, 30*time.Second, log) }()
	}
	cfg.Detectors = []sensor.Detector{&sensor.IntelDetector{Sets: il.Current}, ld}

	// Drift prevention selectors (the preventer is the probe, set below).
	var prev *sensor.Prevention
	if f.preventUnknown && len(f.driftPrevent) == 0 {
		return errors.New("--drift-prevent-unknown needs at least one --drift-prevent selector")
	}
	if len(f.driftPrevent) > 0 {
		prev = &sensor.Prevention{Unknown: f.preventUnknown,
			OnError: func(id string, err error) { log.Error("drift prevention not enabled", "container", id, "err", err) },
			OnEnable: func(id string, cg uint64) {
				counters.Prevented.Add(1)
				log.Info("drift prevention on", "container", id, "cgroup", cg)
			},
			OnAllow: func(id string, cg uint64) {
				log.Debug("container released from unknown-container prevention", "container", id, "cgroup", cg)
			},
		}
		for _, s := range f.driftPrevent {
			sel, err := sensor.ParseSelector(s)
			if err != nil {
				return fmt.Errorf("--drift-prevent: %w", err)
			}
			prev.Selectors = append(prev.Selectors, sel)
		}
		cfg.Prevention = prev
	}

	// The probe is loaded before anything that may call it (prevention from
	// enrichment's lookups) starts.
	var p *probe.Probe
	if replayFile == "" {
		var err error
		p, err = probe.Load(ctx, probe.Config{Logger: log, RingBufferBytes: f.ringBufferBytes, PreventUnknown: f.preventUnknown})
		if err != nil {
			return fmt.Errorf("load the eBPF probe: %w", err)
		}
		defer p.Close()
		if prev != nil {
			prev.Preventer = p
			// Decisions of exited containers are pruned from the probe's map.
			if alive, err := sensor.CgroupAlive(""); err == nil {
				prev.Alive = alive
			} else {
				log.Warn("drift prevention: decisions of exited containers will not be pruned", "err", err)
			}
			// The probe's cgroup resolver knows each container's cgroup from
			// its events: no walk of the cgroup tree per container.
			if r, ok := p.Containers().(interface{ CgroupIDOf(string) (uint64, bool) }); ok {
				walk := sensor.CgroupIDFromFS("")
				prev.CgroupID = func(id string) (uint64, error) {
					if cg, ok := r.CgroupIDOf(id); ok {
						return cg, nil
					}
					return walk(id)
				}
			}
		}
	}

	// Enrichment: the runtime's own state first (image and container names as
	// the runtime started them, also for containers outside Kubernetes; a
	// local read), then the runtime's CRI socket (pod uid and labels, image
	// digest; a round trip, asked off the event path), then the pod informer
	// (workload, labels, digest); answers are merged in that order.
	var resolvers []enrich.Resolver
	var runtime *enrich.Runtime
	if !f.noRuntimeState && len(f.runtimeState) > 0 {
		runtime = enrich.NewRuntime(enrich.RuntimeConfig{Roots: f.runtimeState})
		resolvers = append(resolvers, runtime)
	}
	cri, err := newCRIResolver(f, log)
	if err != nil {
		return err
	}
	if cri != nil {
		defer cri.Close()
		resolvers = append(resolvers, cri)
	}
	var kube *enrich.Kube
	if !f.noKube {
		rc, err := k8s.RESTConfig(f.kubeconfig, f.kubeContext)
		switch {
		case errors.Is(err, k8s.ErrNoConfig) && f.kubeconfig == "":
			log.Info("no Kubernetes configuration: containers are not attributed to pods")
		case err != nil:
			return fmt.Errorf("--kubeconfig: %w", err)
		default:
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			kube = enrich.NewKube(cs, node, log)
			resolvers = append(resolvers, kube)
		}
	}
	en := enrich.New(enrich.Config{Resolvers: resolvers, Log: log, OnAttributed: func(id string, info *enrich.Info) {
		if prev != nil {
			prev.Consider(id, info)
		}
	}})
	if kube != nil {
		kube.OnChange = en.Invalidate
		if err := kube.Start(ctx, 30*time.Second); err != nil {
			return err
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); en.Run(ctx) }()
	cfg.Enricher = en
	if replayFile == "" && !f.noScriptDrift {
		// Needs the live processes' /proc entries: live mode only.
		sd := &sensor.ScriptDrift{HostRoot: f.hostRoot, Log: log}
		if runtime != nil {
			sd.Runtime = runtime
		}
		cfg.ScriptDrift = sd
	}

	s, err := sensor.New(cfg)
	if err != nil {
		return err
	}
	if f.metricsAddr != "" {
		extra := map[string]func() float64{}
		if runtime != nil {
			extra["runtime_state_lookups_total"] = func() float64 { return float64(runtime.Stats().Lookups) }
			extra["runtime_state_errors_total"] = func() float64 { return float64(runtime.Stats().Errors) }
		}
		if cri != nil {
			extra["cri_lookups_total"] = func() float64 { return float64(cri.Stats().Lookups) }
			extra["cri_calls_total"] = func() float64 { return float64(cri.Stats().Calls) }
			extra["cri_errors_total"] = func() float64 { return float64(cri.Stats().Errors) }
		}
		if sd := cfg.ScriptDrift; sd != nil {
			extra["script_checks_total"] = func() float64 { return float64(sd.Checked.Load()) }
			extra["script_drift_total"] = func() float64 { return float64(sd.Found.Load()) }
			extra["script_checks_dropped_total"] = func() float64 { return float64(sd.Dropped.Load()) }
			extra["script_checks_unverifiable_total"] = func() float64 { return float64(sd.Unverifiable.Load()) }
		}
		if err := serveMetrics(ctx, &wg, f.metricsAddr, counters, en, sp, extra, log); err != nil {
			return err
		}
	}

	if replayFile != "" {
		return a.replay(ctx, s, replayFile, cmd)
	}
	log.Info("sensor running", "node", node, "rules", len(eng.Rules()), "skipped", len(eng.Skipped()))
	return s.Run(ctx, p)
}

// newCRIResolver returns the CRI resolver the flags ask for, or nil. With
// no --cri-socket the usual runtimes' sockets are tried and none found is
// not an error (logged once: attribution then comes from the runtime state
// and the Kubernetes API). A --cri-socket that is not there yet is logged and
// kept: the resolver connects when the runtime creates it.
func newCRIResolver(f *sensorFlags, log *slog.Logger) (*enrich.CRI, error) {
	if f.noCRI {
		return nil, nil
	}
	sock := f.criSocket
	if sock == "" {
		found, err := enrich.FindCRISocket(enrich.DefaultCRISockets())
		if err != nil {
			log.Info("no CRI socket: containers are attributed from the runtime state and the Kubernetes API only", "err", err)
			return nil, nil
		}
		sock = found
	} else if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		log.Warn("--cri-socket is not a socket (yet): lookups fail until the runtime creates it", "socket", sock)
	}
	cri, err := enrich.NewCRI(enrich.CRIConfig{Socket: sock, Log: log})
	if err != nil {
		return nil, fmt.Errorf("--cri-socket: %w", err)
	}
	log.Info("attributing containers through the CRI socket", "socket", cri.Socket())
	return cri, nil
}

func (a *app) replay(ctx context.Context, s *sensor.Sensor, path string, cmd *cobra.Command) error {
	var r io.Reader
	if path == "-" {
		r = cmd.InOrStdin()
	} else {
		fh, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer fh.Close()
		r = fh
	}
	rp := &sensor.Replay{R: r, Name: path, OnError: func(line int, err error) {
		fmt.Fprintf(a.env.Stderr, "%s:%d: %v\n", path, line, err)
	}}
	if err := s.Run(ctx, rp); err != nil {
		return err
	}
	c := s.Counters()
	fmt.Fprintf(a.env.Stderr, "replayed %d events (%d bad lines): %d alerts\n", rp.Events, rp.Bad, c.AlertsRaised.Load())
	if rp.Bad > 0 {
		return fmt.Errorf("replay %s: %d lines could not be decoded", path, rp.Bad)
	}
	return nil
}

// drainSpool waits (bounded) until the spool has nothing pending.
func drainSpool(ctx context.Context, sp *spool.Spool, max time.Duration) {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		recs, _, err := sp.Read(1, 1)
		if err != nil || len(recs) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func serveMetrics(ctx context.Context, wg *sync.WaitGroup, addr string, c *sensor.Counters, en *enrich.Enricher, sp *spool.Spool,
	extra map[string]func() float64, log interface {
		Error(string, ...any)
	}) error {
	reg := prometheus.NewRegistry()
	gauges := map[string]func() float64{
		"enrich_cached_containers":   func() float64 { return float64(en.Stats().Cached) },
		"enrich_misses_total":        func() float64 { return float64(en.Stats().Misses) },
		"enrich_queue_drops_total":   func() float64 { return float64(en.Stats().QueueDrops) },
		"enrich_lookup_errors_total": func() float64 { return float64(en.Stats().LookupErrors) },
	}
	for k, f := range extra {
		gauges[k] = f
	}
	if sp != nil {
		gauges["spool_bytes"] = func() float64 { return float64(sp.Stats().Bytes) }
		gauges["spool_corrupt_records_total"] = func() float64 { return float64(sp.Stats().CorruptRecords) }
	}
	if err := c.Register(reg, gauges); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() { defer wg.Done(); <-ctx.Done(); srv.Close() }()
	return nil
}
