package k8stest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure one test cluster.
type Options struct {
	// AuditPolicy is a YAML audit.k8s.io/v1 Policy; empty means no
	// auditing. When set, events are written as JSON lines to
	// Cluster.AuditLogPath (and to AuditWebhook when that is set too).
	AuditPolicy string
	// AuditWebhook sends audit events in batches to a webhook, as a real
	// cluster configured with --audit-webhook-config-file does. Needs
	// AuditPolicy.
	AuditWebhook *AuditWebhook
	// ExtraArgs are appended to kube-apiserver's flags (a later flag wins),
	// e.g. "--admission-control-config-file=...".
	ExtraArgs []string
}

// AuditWebhook is where kube-apiserver posts audit.k8s.io/v1 EventLists.
type AuditWebhook struct {
	URL string
	// CAPEM verifies the webhook's serving certificate.
	CAPEM []byte
	// ClientCertPEM/ClientKeyPEM: optional client certificate the API
	// server presents; Token: optional bearer token.
	ClientCertPEM, ClientKeyPEM []byte
	Token                       string
	// BatchMaxWait is --audit-webhook-batch-max-wait (default 1s here,
	// instead of the upstream 30s, so tests see events quickly).
	BatchMaxWait time.Duration
}

// Cluster is a running etcd + kube-apiserver.
type Cluster struct {
	Config     *rest.Config // cluster-admin (system:masters client cert)
	Client     kubernetes.Interface
	Kubeconfig string // path to an admin kubeconfig file
	CAPEM      []byte // cluster CA: signs the serving and all client certs
	// AuditLogPath is the JSON-lines audit log when Options.AuditPolicy is
	// set, else empty.
	AuditLogPath string
	// Dir holds the cluster's files (certs, logs, etcd data); it is removed
	// when the test ends.
	Dir string
	// StartupTime is how long Start took until /readyz answered ok.
	StartupTime time.Duration

	ca *ca
}

// Start runs a new cluster for t and stops it when t ends. It skips t when
// the binaries are not built (failing instead when BULWARK_REQUIRE_KUBE=1).
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	begin := time.Now()
	if opts.AuditWebhook != nil && opts.AuditPolicy == "" {
		t.Fatal("k8stest: AuditWebhook needs an AuditPolicy")
	}
	apiserverBin, etcdBin := binaries(t)

	dir := t.TempDir() // before our cleanup: removed after the processes are gone
	c := &Cluster{Dir: dir}
	var err error
	if c.ca, err = newCA("bulwark-test-ca"); err != nil {
		t.Fatal(err)
	}
	c.CAPEM = c.ca.certPEM
	servingCert, servingKey, err := c.ca.issue("kube-apiserver", nil, []string{"127.0.0.1", "localhost", "::1", "kubernetes", "kubernetes.default", "kubernetes.default.svc"})
	if err != nil {
		t.Fatal(err)
	}
	adminCert, adminKey, err := c.ca.issue("bulwark-test-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	saPriv, saPub, err := serviceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.crt": c.CAPEM, "apiserver.crt": servingCert, "apiserver.key": servingKey,
		"sa.key": saPriv, "sa.pub": saPub,
	}
	for name, data := range files {
		writeFile(t, filepath.Join(dir, name), data)
	}

	// Audit configuration does not depend on the ports.
	var auditArgs []string
	if opts.AuditPolicy != "" {
		c.AuditLogPath = filepath.Join(dir, "audit.log")
		writeFile(t, filepath.Join(dir, "audit-policy.yaml"), []byte(opts.AuditPolicy))
		auditArgs = append(auditArgs,
			"--audit-policy-file="+filepath.Join(dir, "audit-policy.yaml"),
			"--audit-log-path="+c.AuditLogPath,
			"--audit-log-format=json",
		)
		if w := opts.AuditWebhook; w != nil {
			kc, err := webhookKubeconfig(w)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "audit-webhook.kubeconfig"), kc)
			wait := w.BatchMaxWait
			if wait <= 0 {
				wait = time.Second
			}
			auditArgs = append(auditArgs,
				"--audit-webhook-config-file="+filepath.Join(dir, "audit-webhook.kubeconfig"),
				"--audit-webhook-batch-max-wait="+wait.String(),
			)
		}
	}

	var procs *processes
	t.Cleanup(func() {
		if procs != nil {
			procs.stop(t)
		}
	})
	// Ports are taken from the kernel and released just before the
	// processes bind them; another test can grab one in that window (go
	// test runs packages in parallel). Such a collision is retried with new
	// ports and a fresh etcd.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 3)
		etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		apiPort := ports[2]
		host := "https://127.0.0.1:" + strconv.Itoa(apiPort)
		procs = &processes{}

		etcdArgs := []string{
			"--name=k8stest",
			"--data-dir=" + filepath.Join(dir, "etcd-"+strconv.Itoa(attempt)),
			"--listen-client-urls=" + etcdClient,
			"--advertise-client-urls=" + etcdClient,
			"--listen-peer-urls=" + etcdPeer,
			"--initial-advertise-peer-urls=" + etcdPeer,
			"--initial-cluster=k8stest=" + etcdPeer,
			"--unsafe-no-fsync", // test data: durability is not worth the seconds
			"--log-level=warn",
		}
		procs.start(t, "etcd", etcdBin, etcdArgs, filepath.Join(dir, "etcd.log"))

		apiArgs := []string{
			"--etcd-servers=" + etcdClient,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			// The endpoint reconciler refuses a loopback advertise address,
			// and nothing in a test reaches the API server through the
			// kubernetes Service anyway.
			"--endpoint-reconciler-type=none",
			"--secure-port=" + strconv.Itoa(apiPort),
			"--tls-cert-file=" + filepath.Join(dir, "apiserver.crt"),
			"--tls-private-key-file=" + filepath.Join(dir, "apiserver.key"),
			"--client-ca-file=" + filepath.Join(dir, "ca.crt"),
			"--authorization-mode=Node,RBAC",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
			"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
			"--service-cluster-ip-range=10.96.0.0/16",
			"--allow-privileged=true", // posture and admission tests submit privileged pods
			"--cert-dir=" + filepath.Join(dir, "certs"),
			"--v=1",
		}
		apiArgs = append(apiArgs, auditArgs...)
		apiArgs = append(apiArgs, opts.ExtraArgs...)
		procs.start(t, "kube-apiserver", apiserverBin, apiArgs, filepath.Join(dir, "kube-apiserver.log"))

		c.Config = &rest.Config{
			Host: host,
			TLSClientConfig: rest.TLSClientConfig{
				CAData: c.CAPEM, CertData: adminCert, KeyData: adminKey,
			},
			QPS: 200, Burst: 400, // tests are bursty; client-side throttling only slows them
		}
		c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
		kc, err := kubeconfig(host, c.CAPEM, "bulwark-test-admin", adminCert, adminKey, "")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, c.Kubeconfig, kc)
		if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
			t.Fatal(err)
		}

		err = c.waitReady(procs, 60*time.Second)
		if err == nil {
			break
		}
		if attempt < attempts && procs.logsContain("address already in use") {
			t.Logf("k8stest: port collision (attempt %d): %v; retrying with new ports", attempt, err)
			procs.stop(t)
			continue
		}
		procs.dumpLogs(t)
		t.Fatalf("k8stest: cluster did not become ready: %v", err)
	}
	// Pods in the default namespace need its ServiceAccount too.
	if err := ensureServiceAccount(context.Background(), c.Client, metav1.NamespaceDefault); err != nil {
		procs.dumpLogs(t)
		t.Fatal(err)
	}
	c.StartupTime = time.Since(begin)
	t.Logf("k8stest: kube-apiserver %s ready at %s in %s", KubeVersion, c.Config.Host, c.StartupTime.Round(time.Millisecond))
	return c
}

// waitReady polls /readyz until it answers 200, a process exits, or the
// timeout passes. /readyz includes the RBAC bootstrap post-start hook, so
// the default ClusterRoles exist once it is ok.
func (c *Cluster) waitReady(procs *processes, timeout time.Duration) error {
	tr, err := rest.TransportFor(c.Config)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if err := procs.exited(); err != nil {
			return err
		}
		resp, err := hc.Get(c.Config.Host + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, lastLines(body, 5))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %s; last /readyz: %s", timeout, last)
}

// UserConfig returns a client config that authenticates as user (with
// groups) through a client certificate signed by the cluster CA. The user
// has no permissions until a test binds a Role to it.
func (c *Cluster) UserConfig(t testing.TB, user string, groups ...string) *rest.Config {
	t.Helper()
	cert, key, err := c.ca.issue(user, groups, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{
		Host:            c.Config.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM, CertData: cert, KeyData: key},
		QPS:             c.Config.QPS, Burst: c.Config.Burst,
	}
}

// Namespace creates namespace name and its "default" ServiceAccount (no
// controller-manager runs to create it, and the ServiceAccount admission
// plugin rejects Pods without it). A namespace it created is deleted when t
// ends; it then stays Terminating, since no namespace controller finalizes
// it. An existing namespace (kube-system, default) only gets the account.
func (c *Cluster) Namespace(t testing.TB, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	existed := apierrors.IsAlreadyExists(err)
	if err != nil && !existed {
		t.Fatalf("k8stest: create namespace %s: %v", name, err)
	}
	if err := ensureServiceAccount(ctx, c.Client, name); err != nil {
		t.Fatal(err)
	}
	if existed { // e.g. kube-system: not ours to delete
		return
	}
	t.Cleanup(func() {
		err := c.Client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("k8stest: delete namespace %s: %v", name, err)
		}
	})
}

func ensureServiceAccount(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("k8stest: create service account %s/default: %w", ns, err)
	}
	return nil
}

// binaries finds the built binaries or skips (fails under EnvRequire).
func binaries(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	miss := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + "; build them with `go run ./internal/k8s/k8stest/cmd/build-kube` (scripts/test.sh does)"
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("k8stest: %s (%s=1, so this fails instead of skipping)", msg, EnvRequire)
		}
		t.Skipf("k8stest: %s", msg)
	}
	root, err := RepoRoot()
	if err != nil {
		miss("cannot locate the repository: %v", err)
	}
	dir, err := BinDir(root)
	if err != nil {
		miss("%v", err)
	}
	apiserver, etcd = filepath.Join(dir, APIServerBinary), filepath.Join(dir, EtcdBinary)
	for _, p := range []string{apiserver, etcd} {
		if _, err := os.Stat(p); err != nil {
			miss("kube-apiserver/etcd %s not built (%s missing)", KubeVersion, p)
		}
	}
	return apiserver, etcd
}

// processes are the cluster's child processes, each in its own process
// group so stop kills anything they started too.
type processes struct {
	list []*proc
}

type proc struct {
	name, logPath string
	cmd           *exec.Cmd
	done          chan struct{}
	err           error
}

func (ps *processes) start(t testing.TB, name, bin string, args []string, logPath string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("k8stest: start %s: %v", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	ps.list = append(ps.list, p)
}

// exited reports the first process that has already exited.
func (ps *processes) exited() error {
	for _, p := range ps.list {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
	return nil
}

// stop terminates the processes in reverse start order (kube-apiserver
// before etcd), politely first, and prints their logs when t failed.
func (ps *processes) stop(t testing.TB) {
	for i := len(ps.list) - 1; i >= 0; i-- {
		p := ps.list[i]
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if t.Failed() {
		ps.dumpLogs(t)
	}
}

// logsContain reports whether any process's log contains s.
func (ps *processes) logsContain(s string) bool {
	for _, p := range ps.list {
		if data, err := os.ReadFile(p.logPath); err == nil && bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

func (ps *processes) dumpLogs(t testing.TB) {
	for _, p := range ps.list {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			t.Logf("k8stest: read %s log: %v", p.name, err)
			continue
		}
		t.Logf("k8stest: last lines of %s's log (%s):\n%s", p.name, p.logPath, lastLines(data, 40))
	}
}

func lastLines(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("k8stest: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// kubeconfig renders a one-context kubeconfig for server, authenticating
// with a client certificate and/or a bearer token.
func kubeconfig(server string, caPEM []byte, user string, certPEM, keyPEM []byte, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM, Token: token}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: user}
	cfg.CurrentContext = "default"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return data, nil
}

func webhookKubeconfig(w *AuditWebhook) ([]byte, error) {
	if w.URL == "" {
		return nil, errors.New("k8stest: AuditWebhook.URL is empty")
	}
	return kubeconfig(w.URL, w.CAPEM, "kube-apiserver", w.ClientCertPEM, w.ClientKeyPEM, w.Token)
}
