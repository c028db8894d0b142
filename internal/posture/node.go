package posture

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// NodeOptions says where the node checks look.
type NodeOptions struct {
	// Root is the host's filesystem root; "/" when empty. A prepared tree
	// (a node image, a test fixture) is evaluated as if it were the host:
	// its proc/<pid>/cmdline files are the running processes.
	Root string
	// KubeletConfig overrides the kubelet config file path (inside Root);
	// by default it is the running kubelet's --config, else
	// /var/lib/kubelet/config.yaml.
	KubeletConfig string
}

// Node components whose processes the checks read.
const (
	compAPIServer  = "kube-apiserver"
	compController = "kube-controller-manager"
	compScheduler  = "kube-scheduler"
	compEtcd       = "etcd"
	compKubelet    = "kubelet"
	compProxy      = "kube-proxy"
)

var nodeComponents = []string{compAPIServer, compController, compScheduler, compEtcd, compKubelet, compProxy}

// process is one running (or statically declared) control-plane or node
// component and its flags.
type process struct {
	ref   ObjectRef
	flags map[string]string // flag name without dashes -> value ("true" for a bare boolean flag)
}

func (p *process) flag(name string) (string, bool) {
	v, ok := p.flags[name]
	return v, ok
}

// host is what the node checks read, gathered once.
type host struct {
	root      *os.Root
	rootPath  string
	procs     map[string][]*process
	kubelet   *kubeletView
	users     map[string]int // from etc/passwd inside root
	groups    map[string]int
	readErrs  []DecodeError
	fileCache map[string]fileFact
}

type fileFact struct {
	info fs.FileInfo
	err  error
}

// boolFlags are the flags of the components that are booleans, so a bare
// "--flag" does not swallow the next argument as its value.
var boolFlags = map[string]bool{
	"anonymous-auth": true, "profiling": true, "client-cert-auth": true, "auto-tls": true, "peer-client-cert-auth": true,
	"peer-auto-tls": true, "make-iptables-util-chains": true, "rotate-certificates": true, "use-service-account-credentials": true,
	"service-account-lookup": true, "allow-privileged": true, "enable-bootstrap-token-auth": true, "v": false,
	"logtostderr": true, "insecure-skip-tls-verify": true, "enable-aggregator-routing": true, "protect-kernel-defaults": true,
	"serialize-image-pulls": true, "fail-swap-on": true, "enable-v2": true, "strict-reconfig-check": true,
}

// parseFlags reads "--name=value", "--name value" and bare boolean flags
// (one or two dashes, as Go's flag and pflag packages both accept).
func parseFlags(args []string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			m[k] = v
			continue
		}
		if !boolFlags[name] && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			m[name] = args[i+1]
			i++
			continue
		}
		m[name] = "true"
	}
	return m
}

// rel turns an absolute host path into a path inside the root.
func rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// maxCmdline bounds what one /proc/<pid>/cmdline may cost.
const maxCmdline = 1 << 20

// gatherHost reads processes, static pod manifests, the kubelet config and
// the account databases. What cannot be read is recorded, not fatal.
func gatherHost(ctx context.Context, opt NodeOptions) (*host, error) {
	rootPath := opt.Root
	if rootPath == "" {
		rootPath = "/"
	}
	root, err := os.OpenRoot(rootPath)
	if err != nil {
		return nil, fmt.Errorf("node: open root %s: %w", rootPath, err)
	}
	h := &host{root: root, rootPath: rootPath, procs: map[string][]*process{}, fileCache: map[string]fileFact{}}
	if err := h.readProcs(ctx); err != nil {
		root.Close()
		return nil, err
	}
	h.readStaticPods()
	h.users = readIDs(root, "etc/passwd")
	h.groups = readIDs(root, "etc/group")
	h.readKubelet(opt.KubeletConfig)
	return h, nil
}

func (h *host) close() { h.root.Close() }

func (h *host) readProcs(ctx context.Context) error {
	d, err := h.root.Open("proc")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a prepared tree without processes
		}
		return fmt.Errorf("node: read proc: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("node: read proc: %w", err)
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("node: read proc: %w", err)
		}
		p := "proc/" + strconv.Itoa(pid) + "/cmdline"
		f, err := h.root.Open(p)
		if err != nil {
			continue // exited, or not ours to read
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(io.LimitReader(f, maxCmdline))
		f.Close()
		if err != nil || buf.Len() == 0 {
			continue // kernel threads have an empty cmdline
		}
		args := strings.Split(strings.TrimRight(buf.String(), "\x00"), "\x00")
		comp := component(args)
		if comp == "" {
			continue
		}
		// "kubelet" may be invoked through hyperkube or a wrapper; the
		// flags are what follows the component name.
		h.procs[comp] = append(h.procs[comp], &process{
			ref:   ObjectRef{Source: "/" + p, Kind: "Process", Name: comp + " (pid " + strconv.Itoa(pid) + ")"},
			flags: parseFlags(args[1:]),
		})
	}
	return nil
}

// component names the Kubernetes component a command line runs, or "".
func component(args []string) string {
	base := path.Base(args[0])
	if base == "hyperkube" && len(args) > 1 {
		base = args[1]
	}
	for _, c := range nodeComponents {
		if base == c {
			return c
		}
	}
	return ""
}

// readStaticPods adds, for a control-plane component that is not running,
// the command line of its static pod manifest, so a node image or a node
// whose pods are down is still evaluated.
func (h *host) readStaticPods() {
	for _, c := range []string{compAPIServer, compController, compScheduler, compEtcd} {
		if len(h.procs[c]) > 0 {
			continue
		}
		p := "etc/kubernetes/manifests/" + c + ".yaml"
		data, err := readBounded(h.root, p, 1<<20)
		if err != nil {
			continue
		}
		var pod corev1.Pod
		if err := yaml.Unmarshal(data, &pod); err != nil {
			h.readErrs = append(h.readErrs, DecodeError{Source: "/" + p, Err: "static pod manifest: " + err.Error()})
			continue
		}
		for _, ct := range pod.Spec.Containers {
			args := append(append([]string{}, ct.Command...), ct.Args...)
			if len(args) == 0 || component(args) != c {
				continue
			}
			h.procs[c] = append(h.procs[c], &process{
				ref:   ObjectRef{Source: "/" + p, Kind: "StaticPod", Name: c},
				flags: parseFlags(args[1:]),
			})
		}
	}
}

func readBounded(root *os.Root, p string, limit int64) ([]byte, error) {
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", p, ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}

// readIDs reads name -> id from a passwd or group file inside root.
func readIDs(root *os.Root, p string) map[string]int {
	m := map[string]int{}
	data, err := readBounded(root, p, 4<<20)
	if err != nil {
		return m
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 {
			continue
		}
		if id, err := strconv.Atoi(f[2]); err == nil {
			m[f[0]] = id
		}
	}
	return m
}

// stat is Stat inside the root (symlinks followed, never out of it),
// cached.
func (h *host) stat(p string) (fs.FileInfo, error) {
	if f, ok := h.fileCache[p]; ok {
		return f.info, f.err
	}
	fi, err := h.root.Stat(rel(p))
	h.fileCache[p] = fileFact{fi, err}
	return fi, err
}

// nodeOutcome is the verdict of a node control on one object.
type nodeOutcome struct {
	ref ObjectRef
	outcome
}

type nodeCheckFn func(h *host) []nodeOutcome

// EvaluateNode runs the CIS control-plane and worker-node checks on the
// host (or the tree at opt.Root).
func EvaluateNode(ctx context.Context, opt NodeOptions) (*Report, error) {
	h, err := gatherHost(ctx, opt)
	if err != nil {
		return nil, err
	}
	defer h.close()
	controls := nodeControls()
	rep := &Report{Catalogue: CatalogueVersion, Controls: controls, Errors: h.readErrs}
	objIdx := map[string]int{}
	for ci := range controls {
		c := &controls[ci]
		for _, o := range c.node(h) {
			key := o.ref.Kind + "\x00" + o.ref.Source + "\x00" + o.ref.Name
			oi, ok := objIdx[key]
			if !ok {
				oi = len(rep.Objects)
				objIdx[key] = oi
				rep.Objects = append(rep.Objects, o.ref)
			}
			rep.Results = append(rep.Results, Result{ci: ci, Control: c.ID, Object: oi, Status: o.status, Severity: c.Severity, Message: o.msg})
		}
	}
	hostName := "node"
	if data, err := readBounded(h.root, "etc/hostname", 4096); err == nil && len(bytes.TrimSpace(data)) > 0 {
		hostName = "node " + string(bytes.TrimSpace(data))
	}
	scoreReport(rep, controls, func(*ObjectRef) string { return hostName })
	return rep, nil
}
