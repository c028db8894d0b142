package enrich

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI attributes a container by asking the container runtime itself over
// its CRI socket (k8s.io/cri-api runtime.v1 RuntimeService, gRPC on a unix
// socket), as the kubelet does. It is what the issue asks for ("from the
// container runtime's CRI socket when there is one") and it answers what the
// runtime's state files cannot: the image digest the runtime resolved, the
// pod uid and labels of containers whose OCI config carries no annotation.
//
// Per container id, on a cache miss:
//   - ContainerStatus: the kubelet's labels (io.kubernetes.pod.name,
//     .pod.namespace, .pod.uid, .container.name — k8s.io/kubelet
//     pkg/types/labels.go), metadata.name, the image (containerd reports its
//     first repo tag) and image_ref (containerd reports repo@sha256:<manifest
//     digest> when it knows one: that digest becomes ImageDigest; a bare
//     sha256: image id is not a manifest digest and is not used);
//   - ListContainers filtered by id for the container's pod sandbox id, then
//     PodSandboxStatus (cached per sandbox): the pod's name, namespace and
//     uid from its metadata (so a container created without kubelet labels,
//     e.g. by crictl, is still attributed) and the pod's labels;
//   - a NotFound from ContainerStatus is asked again as a sandbox: the pod's
//     sandbox ("pause") container is not a CRI container, PodSandboxStatus
//     knows it, and it is reported with Sandbox set;
//   - NotFound from both (the container exited before it was asked) is
//     ErrNotFound, cached for NegTTL like any miss.
//
// Not Local: a lookup is a round trip to the runtime (~0.3–1 ms), so the
// Enricher asks it from its async workers, never on the event path. The
// connection is made lazily on the first lookup and re-made by gRPC after a
// runtime restart (backoff capped at 3 s); every call has a deadline
// (CallTimeout); an unreachable runtime is an error wrapping
// ErrCRIUnavailable, logged once per outage.
//
// The answers are outside data: messages are capped (MaxMsgBytes), names
// longer than a Kubernetes name can be or holding control bytes are dropped,
// image references are capped at 1 KiB, digests must be sha256:<64 hex>,
// and at most 256 pod labels of at most 1 KiB each are kept.
// Annotations are not kept: no Info field needs them.
type CRI struct {
	cfg   CRIConfig
	conn  *grpc.ClientConn
	rt    runtimeapi.RuntimeServiceClient
	cache *answerCache[*Info] // container id → answer (nil Info: with an error)
	pods  *answerCache[*Info] // sandbox id → the pod's Info

	calls atomic.Uint64
	down  atomic.Bool // the last call could not reach the runtime
}

// CRIConfig configures a CRI resolver.
type CRIConfig struct {
	Socket      string        // the runtime's CRI socket (a path; required)
	DialTimeout time.Duration // connection attempt (default 1s)
	CallTimeout time.Duration // per call (default 2s)
	MaxMsgBytes int           // largest answer accepted (default 4 MiB)
	CacheSize   int           // containers remembered (default 4096)
	TTL         time.Duration // positive answers (default 1m)
	NegTTL      time.Duration // not found / errors (default 2s)
	Log         *slog.Logger
	Now         func() time.Time
}

// CRIStats are the resolver's counters.
type CRIStats struct {
	Lookups, Hits, NotFound, Errors, Calls uint64
}

// ErrCRIUnavailable wraps errors of a runtime that could not be reached
// (socket gone, runtime restarting, deadline exceeded).
var ErrCRIUnavailable = errors.New("CRI runtime unavailable")

// ErrNoCRISocket: none of the candidate sockets exists.
var ErrNoCRISocket = errors.New("no CRI socket found")

// DefaultCRISockets are the CRI sockets of the usual runtimes, in the order
// they are tried: containerd, CRI-O, cri-dockerd (Docker Engine).
func DefaultCRISockets() []string {
	return []string{"/run/containerd/containerd.sock", "/run/crio/crio.sock", "/var/run/cri-dockerd.sock"}
}

// FindCRISocket returns the first candidate that is a unix socket.
func FindCRISocket(candidates []string) (string, error) {
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (tried %s)", ErrNoCRISocket, strings.Join(candidates, ", "))
}

// NewCRI returns a CRI resolver for the socket. Nothing is dialled yet.
func NewCRI(cfg CRIConfig) (*CRI, error) {
	if cfg.Socket == "" {
		return nil, errors.New("CRI resolver: no socket")
	}
	abs, err := filepath.Abs(cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("CRI socket %s: %w", cfg.Socket, err)
	}
	cfg.Socket = abs
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	if cfg.MaxMsgBytes <= 0 {
		cfg.MaxMsgBytes = 4 << 20
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cacheDefaults(&cfg.CacheSize, &cfg.TTL, &cfg.NegTTL, &cfg.Now)
	conn, err := grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMsgBytes)),
		grpc.WithDisableServiceConfig(),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: cfg.DialTimeout,
		}))
	if err != nil {
		return nil, fmt.Errorf("CRI client for %s: %w", abs, err)
	}
	return &CRI{cfg: cfg, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn),
		cache: newAnswerCache[*Info](cfg.CacheSize, cfg.TTL, cfg.NegTTL, cfg.Now),
		pods:  newAnswerCache[*Info](max(cfg.CacheSize/4, 16), cfg.TTL, cfg.NegTTL, cfg.Now)}, nil
}

// Name implements Resolver.
func (c *CRI) Name() string { return "cri" }

// Socket is the socket the resolver asks.
func (c *CRI) Socket() string { return c.cfg.Socket }

// Close closes the connection.
func (c *CRI) Close() error { return c.conn.Close() }

// Forget drops a container from the cache.
func (c *CRI) Forget(id string) { c.cache.forget(id) }

// Stats returns the counters.
func (c *CRI) Stats() CRIStats {
	a := c.cache
	return CRIStats{Lookups: a.lookups.Load(), Hits: a.hits.Load(), NotFound: a.notFound.Load(), Errors: a.errs.Load(), Calls: c.calls.Load()}
}

// Resolve implements Resolver.
func (c *CRI) Resolve(ctx context.Context, id string) (*Info, error) {
	if !validID(id) {
		return nil, fmt.Errorf("CRI lookup of %q: %w", trunc(id, 80), ErrBadContainerID)
	}
	return c.cache.resolve(id, func() (*Info, error) { return c.lookup(ctx, id) })
}

func (c *CRI) lookup(ctx context.Context, id string) (*Info, error) {
	var st *runtimeapi.ContainerStatusResponse
	err := c.call(ctx, "ContainerStatus", id, func(ctx context.Context) (err error) {
		st, err = c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		return err
	})
	if errors.Is(err, ErrNotFound) {
		// Not a container: the pod's sandbox, or gone.
		p, serr := c.sandbox(ctx, id)
		if serr != nil {
			return nil, serr
		}
		i := *p
		i.Sandbox = true
		return &i, nil
	}
	if err != nil {
		return nil, err
	}
	info := InfoFromContainerStatus(st.GetStatus())
	// The pod: the sandbox's metadata and labels. A container that went
	// away meanwhile keeps what its status said.
	var list *runtimeapi.ListContainersResponse
	err = c.call(ctx, "ListContainers", id, func(ctx context.Context) (err error) {
		list, err = c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: id}})
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	for _, ct := range list.GetContainers() {
		if ct.GetId() != id || !validID(ct.GetPodSandboxId()) {
			continue
		}
		p, err := c.sandbox(ctx, ct.GetPodSandboxId())
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if p != nil {
			info = Merge(info, p)
		}
		break
	}
	if info.empty() {
		return nil, fmt.Errorf("CRI container %s: no names: %w", id, ErrNotFound)
	}
	return info, nil
}

// sandbox returns the pod of a sandbox id, cached per sandbox (the pods of
// a node have several containers each).
func (c *CRI) sandbox(ctx context.Context, id string) (*Info, error) {
	return c.pods.resolve(id, func() (*Info, error) {
		var r *runtimeapi.PodSandboxStatusResponse
		err := c.call(ctx, "PodSandboxStatus", id, func(ctx context.Context) (err error) {
			r, err = c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
			return err
		})
		if err != nil {
			return nil, err
		}
		if i := InfoFromSandboxStatus(r.GetStatus()); !i.empty() {
			return i, nil
		}
		return nil, fmt.Errorf("CRI sandbox %s: no pod metadata: %w", id, ErrNotFound)
	})
}

// call runs one RPC with the per-call deadline and maps its error:
// NotFound → ErrNotFound, unreachable → ErrCRIUnavailable (logged once per
// outage, and once when the runtime answers again).
func (c *CRI) call(ctx context.Context, method, id string, f func(context.Context) error) error {
	c.calls.Add(1)
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	err := f(cctx)
	cancel()
	if err == nil {
		if c.down.CompareAndSwap(true, false) {
			c.cfg.Log.Info("CRI runtime reachable again", "socket", c.cfg.Socket)
		}
		return nil
	}
	switch status.Code(err) {
	case codes.NotFound:
		if c.down.CompareAndSwap(true, false) {
			c.cfg.Log.Info("CRI runtime reachable again", "socket", c.cfg.Socket)
		}
		return fmt.Errorf("CRI %s %s: %w", method, id, ErrNotFound)
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		if ctx.Err() == nil && c.down.CompareAndSwap(false, true) {
			c.cfg.Log.Warn("CRI runtime unreachable: containers keep the names the other resolvers give",
				"socket", c.cfg.Socket, "err", err)
		}
		return fmt.Errorf("CRI %s %s: %w: %w", method, id, ErrCRIUnavailable, err)
	}
	return fmt.Errorf("CRI %s %s: %w", method, id, err)
}

// Caps on what a CRI answer may put into an Info.
const (
	maxCRIName     = 253 // a Kubernetes name (DNS subdomain) is at most 253 bytes
	maxCRIImage    = 1024
	maxCRILabels   = 256
	maxCRILabelLen = 1024 // "key:value"
)

// Kubelet's labels on CRI containers and sandboxes (k8s.io/kubelet/pkg/types).
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// InfoFromContainerStatus maps a CRI ContainerStatus to Info, keeping only
// well-formed, bounded values (a nil status gives an empty Info).
func InfoFromContainerStatus(st *runtimeapi.ContainerStatus) *Info {
	l := st.GetLabels()
	i := &Info{
		Pod:           criName(l[LabelPodName]),
		Namespace:     criName(l[LabelPodNamespace]),
		PodUID:        criName(l[LabelPodUID]),
		ContainerName: criName(l[LabelContainerName]),
	}
	if i.ContainerName == "" {
		i.ContainerName = criName(st.GetMetadata().GetName())
	}
	img := st.GetImage()
	// containerd puts its first repo tag in image.image (or what was asked,
	// which the kubelet makes the image id); user_specified_image, when a
	// runtime fills it, is what the pod spec said.
	for _, ref := range []string{img.GetUserSpecifiedImage(), img.GetImage()} {
		if v := criImage(ref); v != "" {
			i.Image = v
			break
		}
	}
	i.ImageDigest = repoDigest(st.GetImageRef())
	return i
}

// InfoFromSandboxStatus maps a CRI PodSandboxStatus to Info: the pod's
// name, namespace and uid (metadata first, kubelet labels second) and its
// labels as "key:value" (kubelet's own io.kubernetes.pod.* labels left out),
// sorted, bounded.
func InfoFromSandboxStatus(st *runtimeapi.PodSandboxStatus) *Info {
	l := st.GetLabels()
	m := st.GetMetadata()
	first := func(a, b string) string {
		if v := criName(a); v != "" {
			return v
		}
		return criName(b)
	}
	i := &Info{
		Pod:       first(m.GetName(), l[LabelPodName]),
		Namespace: first(m.GetNamespace(), l[LabelPodNamespace]),
		PodUID:    first(m.GetUid(), l[LabelPodUID]),
	}
	keys := make([]string, 0, min(len(l), 4*maxCRILabels))
	for k := range l {
		if len(keys) == cap(keys) {
			break // a hostile map: no more than we could ever keep is sorted
		}
		if k == LabelPodName || k == LabelPodNamespace || k == LabelPodUID {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv := k + ":" + l[k]
		if len(i.Labels) == maxCRILabels {
			break
		}
		if k == "" || len(kv) > maxCRILabelLen || !printable(kv) {
			continue
		}
		i.Labels = append(i.Labels, kv)
	}
	return i
}

// criName keeps a name that could be a Kubernetes name or uid.
func criName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxCRIName || !printable(s) {
		return ""
	}
	return s
}

func criImage(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxCRIImage || !printable(s) || strings.ContainsAny(s, " \t") {
		return ""
	}
	return s
}

// repoDigest returns the manifest digest of a "repo@sha256:<hex>" reference.
func repoDigest(ref string) string {
	at := strings.LastIndexByte(ref, '@')
	if at <= 0 || len(ref) > maxCRIImage {
		return ""
	}
	d := ref[at+1:]
	if !strings.HasPrefix(d, "sha256:") || !isHex(d[len("sha256:"):], 64) {
		return ""
	}
	return d
}

func isHex(s string, n int) bool { return len(s) == n && strings.Trim(s, "0123456789abcdef") == "" }

// printable: valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
