package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Runtime attributes a container from the OCI runtime's own state on this
// node, with no daemon socket: every runc-based
// runtime keeps one directory per container under its state root, and the
// CRI layers write the pod, namespace, container and image names into the
// OCI config as annotations.
//
// What is read, per container id, under each state root in order:
//   - runc (also under containerd's shim, CRI-O and podman): <root>/<id>/state.json.
//     runc copies every OCI annotation of the bundle into config.labels as
//     "key=value", plus "bundle=<path>" (checked here with runc 1.1.5; runc's
//     libcontainer/specconv does it when it converts the spec).
//   - crun: <root>/<id>/status (crun's src/libcrun/status.c writes
//     {"pid", "process-start-time", "bundle", "rootfs", "created", ...}).
//   - when the state carries no recognised annotation (crun, or a runtime
//     that does not copy them), <bundle>/config.json's "annotations".
//
// Annotation keys (from the runtimes' sources, not guessed):
//   - containerd CRI, pkg/cri/annotations/annotations.go (containerd 1.6+;
//     internal/cri/annotations in 2.x): io.kubernetes.cri.container-type
//     ("container" | "sandbox"), io.kubernetes.cri.sandbox-name (pod),
//     io.kubernetes.cri.sandbox-namespace, io.kubernetes.cri.sandbox-uid,
//     io.kubernetes.cri.sandbox-id, io.kubernetes.cri.container-name,
//     io.kubernetes.cri.image-name.
//   - CRI-O, pkg/annotations/internal.go + internal/factory/container
//     (SpecAddAnnotations): io.kubernetes.cri-o.ImageName ("some name of the
//     image"), io.kubernetes.cri-o.Image (the image the user asked for),
//     io.kubernetes.cri-o.ImageRef (image id), io.kubernetes.cri-o.ContainerType,
//     io.kubernetes.cri-o.SandboxName; CRI-O also copies the kubelet's
//     container labels as annotations: io.kubernetes.pod.name,
//     io.kubernetes.pod.namespace, io.kubernetes.container.name
//     (k8s.io/kubelet/pkg/types/labels.go).
//   - podman, libpod/define/annotations.go: io.podman.annotations.privileged
//     ("TRUE"/"FALSE"); podman writes no image or pod name annotation, so a
//     podman container gets its id (and privileged) only.
//
// Bounded and hostile-input safe: each state root is opened as an os.Root,
// so a symlink in a state directory cannot lead the read outside the root;
// files are opened non-blocking (a FIFO cannot stall the sensor), must be
// regular files and are read up to MaxStateBytes / MaxConfigBytes; the
// container id must be a plain file name. It is asked before the CRI socket
// (CRI): a local read, no daemon round trip, and it also names containers
// of runtimes with no CRI socket.
type Runtime struct {
	cfg   RuntimeConfig
	cache *answerCache[*ContainerState] // nil state: not found (with the error)

}

// RuntimeConfig configures a Runtime resolver.
type RuntimeConfig struct {
	// Roots are the runtime state directories (default DefaultRuntimeRoots).
	Roots          []string
	MaxStateBytes  int64         // default 1 MiB
	MaxConfigBytes int64         // default 4 MiB
	CacheSize      int           // containers remembered (default 4096)
	TTL            time.Duration // positive answers (default 1m)
	NegTTL         time.Duration // "not found" answers (default 2s)
	Now            func() time.Time
}

// DefaultRuntimeRoots are the state roots of the usual runc-based runtimes:
// containerd's shim runs runc with --root /run/containerd/runc/<namespace>
// (RuncRoot in containerd's pkg/process; namespace k8s.io for the CRI
// plugin, moby for Docker's containerd), Docker's own runc root, runc's and
// CRI-O's default (/run/runc, CRI-O's runtime_root default), and crun's.
func DefaultRuntimeRoots() []string {
	return []string{
		"/run/containerd/runc/k8s.io",
		"/run/containerd/runc/moby",
		"/run/containerd/runc/default",
		"/run/docker/runtime-runc/moby",
		"/run/runc",
		"/run/crun",
	}
}

// ContainerState is what the runtime's state says about one container.
type ContainerState struct {
	ID          string
	Root        string // the state root it was found under
	Bundle      string
	InitPID     int
	InitStart   uint64 // the init process's start time (clock ticks since boot, /proc/<pid>/stat field 22)
	Annotations map[string]string
	Info        Info // what the annotations say (empty fields: not known)
}

// RuntimeStats are the resolver's counters.
type RuntimeStats struct {
	Lookups, Hits, NotFound, Errors uint64
}

// Errors of a runtime state lookup.
var (
	ErrBadContainerID = errors.New("container id is not a plain name")
	ErrStateTooLarge  = errors.New("runtime state file too large")
	ErrBadState       = errors.New("runtime state file invalid")
)

// NewRuntime returns a Runtime resolver.
func NewRuntime(cfg RuntimeConfig) *Runtime {
	if len(cfg.Roots) == 0 {
		cfg.Roots = DefaultRuntimeRoots()
	}
	if cfg.MaxStateBytes <= 0 {
		cfg.MaxStateBytes = 1 << 20
	}
	if cfg.MaxConfigBytes <= 0 {
		cfg.MaxConfigBytes = 4 << 20
	}
	cacheDefaults(&cfg.CacheSize, &cfg.TTL, &cfg.NegTTL, &cfg.Now)
	return &Runtime{cfg: cfg, cache: newAnswerCache[*ContainerState](cfg.CacheSize, cfg.TTL, cfg.NegTTL, cfg.Now)}
}

// Name implements Resolver.
func (r *Runtime) Name() string { return "runtime-state" }

// Resolve implements Resolver.
func (r *Runtime) Resolve(ctx context.Context, id string) (*Info, error) {
	st, err := r.State(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.Info.empty() {
		return nil, ErrNotFound // a container with no names: nothing to add
	}
	i := st.Info
	return &i, nil
}

// Peek implements Local: the state lives on tmpfs (/run) and is read once
// per container (then cached), so the very first event of a new container
// is attributed (see BenchmarkRuntimeLookup for the cost).
func (r *Runtime) Peek(id string) (*Info, bool) {
	i, err := r.Resolve(context.Background(), id)
	return i, err == nil
}

// Stats returns the counters.
func (r *Runtime) Stats() RuntimeStats {
	c := r.cache
	return RuntimeStats{Lookups: c.lookups.Load(), Hits: c.hits.Load(), NotFound: c.notFound.Load(), Errors: c.errs.Load()}
}

// Forget drops a container from the cache (e.g. it exited).
func (r *Runtime) Forget(id string) { r.cache.forget(id) }

// State returns the runtime's state of a container, from the cache or the
// state roots. A container that is not (or no longer) there is ErrNotFound.
func (r *Runtime) State(ctx context.Context, id string) (*ContainerState, error) {
	return r.cache.resolve(id, func() (*ContainerState, error) { return r.read(ctx, id) })
}

// validID: runtimes name state directories after the container id; anything
// that is not a plain, short file name is refused before touching the disk.
func validID(id string) bool {
	if id == "" || len(id) > 256 || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (r *Runtime) read(ctx context.Context, id string) (*ContainerState, error) {
	if !validID(id) {
		return nil, fmt.Errorf("runtime state of %q: %w", trunc(id, 80), ErrBadContainerID)
	}
	var firstErr error
	for _, root := range r.cfg.Roots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st, err := r.readRoot(root, id)
		if err == nil {
			return st, nil
		}
		if !errors.Is(err, ErrNotFound) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, fmt.Errorf("runtime state of %s: %w", id, ErrNotFound)
}

func (r *Runtime) readRoot(dir, id string) (*ContainerState, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("runtime state root %s: %w", dir, err)
	}
	defer root.Close()
	// runc first, then crun.
	for _, name := range []string{"state.json", "status"} {
		b, err := readBounded(root, id+"/"+name, r.cfg.MaxStateBytes)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue // not this runtime, or the container just exited
		}
		if err != nil {
			return nil, fmt.Errorf("runtime state %s/%s/%s: %w", dir, id, name, err)
		}
		var st *ContainerState
		if name == "state.json" {
			st, err = ParseRuncState(b)
		} else {
			st, err = ParseCrunStatus(b)
		}
		if err != nil {
			return nil, fmt.Errorf("runtime state %s/%s/%s: %w", dir, id, name, err)
		}
		st.ID, st.Root = id, dir
		if !hasKnownAnnotation(st.Annotations) && st.Bundle != "" {
			// No annotations in the state (crun): the bundle's OCI config.
			// A bundle that is gone or unreadable leaves the answer as it is.
			if a, err := r.bundleAnnotations(st.Bundle); err == nil {
				st.Annotations = a
			}
		}
		st.Info = InfoFromAnnotations(st.Annotations)
		return st, nil
	}
	return nil, ErrNotFound
}

func (r *Runtime) bundleAnnotations(bundle string) (map[string]string, error) {
	if !filepath.IsAbs(bundle) {
		return nil, fmt.Errorf("bundle %q: %w: not an absolute path", trunc(bundle, 200), ErrBadState)
	}
	root, err := os.OpenRoot(filepath.Clean(bundle))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	defer root.Close()
	b, err := readBounded(root, "config.json", r.cfg.MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("bundle %s config.json: %w", bundle, err)
	}
	return ParseOCIAnnotations(b)
}

// readBounded reads a regular file under root, non-blocking (a FIFO placed
// in a state directory cannot stall us), refusing more than max bytes.
func readBounded(root *os.Root, name string, max int64) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadState, name)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrStateTooLarge, name, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: %s grew past %d bytes", ErrStateTooLarge, name, max)
	}
	return b, nil
}

// Limits on what one state file may carry (after the byte cap).
const (
	maxAnnotations  = 1024
	maxAnnotationKV = 64 << 10
)

// ParseRuncState parses runc's state.json: the init pid and start time, the
// bundle and the annotations runc copied into config.labels ("k=v").
func ParseRuncState(b []byte) (*ContainerState, error) {
	var raw struct {
		InitPID   int    `json:"init_process_pid"`
		InitStart uint64 `json:"init_process_start"`
		Config    struct {
			Labels []string `json:"labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	if raw.InitPID < 0 || len(raw.Config.Labels) > maxAnnotations+1 {
		return nil, fmt.Errorf("%w: implausible pid or label count", ErrBadState)
	}
	st := &ContainerState{InitPID: raw.InitPID, InitStart: raw.InitStart, Annotations: map[string]string{}}
	for _, l := range raw.Config.Labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" || len(l) > maxAnnotationKV {
			continue
		}
		if k == "bundle" {
			st.Bundle = v
			continue
		}
		st.Annotations[k] = v
	}
	return st, nil
}

// ParseCrunStatus parses crun's status file.
func ParseCrunStatus(b []byte) (*ContainerState, error) {
	var raw struct {
		PID       int    `json:"pid"`
		StartTime uint64 `json:"process-start-time"`
		Bundle    string `json:"bundle"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	if raw.PID < 0 {
		return nil, fmt.Errorf("%w: negative pid", ErrBadState)
	}
	return &ContainerState{InitPID: raw.PID, InitStart: raw.StartTime, Bundle: raw.Bundle}, nil
}

// ParseOCIAnnotations returns the "annotations" of an OCI runtime config.
// Only that member is decoded (the rest of the spec is skipped unparsed
// into values), so a huge or odd spec costs a scan, not a model.
func ParseOCIAnnotations(b []byte) (map[string]string, error) {
	var raw struct {
		Annotations map[string]string `json:"annotations"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	if len(raw.Annotations) > maxAnnotations {
		return nil, fmt.Errorf("%w: %d annotations", ErrBadState, len(raw.Annotations))
	}
	for k, v := range raw.Annotations {
		if len(k)+len(v) > maxAnnotationKV {
			delete(raw.Annotations, k)
		}
	}
	if raw.Annotations == nil {
		raw.Annotations = map[string]string{}
	}
	return raw.Annotations, nil
}

// Annotation keys read by InfoFromAnnotations (sources: see Runtime).
const (
	AnnContainerdContainerType = "io.kubernetes.cri.container-type"
	AnnContainerdSandboxName   = "io.kubernetes.cri.sandbox-name"
	AnnContainerdSandboxNS     = "io.kubernetes.cri.sandbox-namespace"
	AnnContainerdSandboxUID    = "io.kubernetes.cri.sandbox-uid"
	AnnContainerdContainerName = "io.kubernetes.cri.container-name"
	AnnContainerdImageName     = "io.kubernetes.cri.image-name"

	AnnCRIOImageName     = "io.kubernetes.cri-o.ImageName"
	AnnCRIOImage         = "io.kubernetes.cri-o.Image"
	AnnCRIOContainerType = "io.kubernetes.cri-o.ContainerType"
	AnnKubePodName       = "io.kubernetes.pod.name"
	AnnKubePodNamespace  = "io.kubernetes.pod.namespace"
	AnnKubeContainerName = "io.kubernetes.container.name"
	AnnKubePodUID        = "io.kubernetes.pod.uid"

	AnnPodmanPrivileged = "io.podman.annotations.privileged"
)

func hasKnownAnnotation(a map[string]string) bool {
	for _, k := range []string{AnnContainerdContainerType, AnnContainerdImageName, AnnCRIOImageName, AnnCRIOContainerType,
		AnnKubePodName, AnnPodmanPrivileged} {
		if _, ok := a[k]; ok {
			return true
		}
	}
	return false
}

// InfoFromAnnotations maps CRI annotations to Info. Nothing is invented: a
// field stays empty unless an annotation names it.
func InfoFromAnnotations(a map[string]string) Info {
	var i Info
	first := func(keys ...string) string {
		for _, k := range keys {
			if v := strings.TrimSpace(a[k]); v != "" {
				return v
			}
		}
		return ""
	}
	i.Pod = first(AnnContainerdSandboxName, AnnKubePodName)
	i.Namespace = first(AnnContainerdSandboxNS, AnnKubePodNamespace)
	i.ContainerName = first(AnnContainerdContainerName, AnnKubeContainerName)
	i.Image = first(AnnContainerdImageName, AnnCRIOImageName, AnnCRIOImage)
	i.PodUID = first(AnnContainerdSandboxUID, AnnKubePodUID)
	// The sandbox ("pause") container: containerd and CRI-O both say
	// "sandbox" in their container-type annotation.
	i.Sandbox = a[AnnContainerdContainerType] == "sandbox" || a[AnnCRIOContainerType] == "sandbox"
	// CRI-O's io.kubernetes.cri-o.ImageRef is the image id (config digest),
	// not the manifest digest kubelet reports as imageID: not used as
	// ImageDigest (the informer fills that).
	if strings.EqualFold(a[AnnPodmanPrivileged], "TRUE") {
		i.Privileged = true
	}
	return i
}

func (i *Info) empty() bool {
	return i.ContainerName == "" && i.Pod == "" && i.Namespace == "" && i.Image == "" && i.ImageDigest == "" &&
		len(i.Labels) == 0 && i.Workload == "" && !i.Privileged && i.PodUID == "" && !i.Sandbox
}

// Merge combines two answers for one container: fields of a win, b fills
// what a lacks. Neither argument is modified; when one is nil the other is
// returned as is.
func Merge(a, b *Info) *Info {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	m := *a
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&m.ContainerName, b.ContainerName}, {&m.Pod, b.Pod}, {&m.Namespace, b.Namespace},
		{&m.Image, b.Image}, {&m.ImageDigest, b.ImageDigest}, {&m.Workload, b.Workload}, {&m.PodUID, b.PodUID},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	if len(m.Labels) == 0 {
		m.Labels = b.Labels
	}
	m.Privileged = a.Privileged || b.Privileged
	m.Sandbox = a.Sandbox || b.Sandbox
	return &m
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
