package posture

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// prepareTree copies testdata/node/<name> into a temporary root and applies
// the modes (and, when the test runs as root, the owners) of <name>.modes:
// Git keeps neither.
func prepareTree(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", "node", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(filepath.Join("testdata", "node", name+".modes"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		mode, _ := strconv.ParseUint(f[1], 8, 32)
		p := filepath.Join(dst, f[0])
		if err := os.Chmod(p, fs.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			u, g, _ := strings.Cut(f[2], ":")
			uid, _ := strconv.Atoi(u)
			gid, _ := strconv.Atoi(g)
			if err := os.Lchown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// nodeVerdicts maps "control object-name" to the result.
func nodeVerdicts(rep *Report) map[string]Result {
	m := map[string]Result{}
	for _, r := range rep.Results {
		m[r.Control+" "+rep.Objects[r.Object].Name] = r
	}
	return m
}

var ownershipControls = map[string]bool{
	"BW-NODE-0102": true, "BW-NODE-0104": true, "BW-NODE-0106": true, "BW-NODE-0108": true, "BW-NODE-0112": true,
	"BW-NODE-0114": true, "BW-NODE-0116": true, "BW-NODE-0118": true, "BW-NODE-0119": true, "BW-NODE-0602": true,
	"BW-NODE-0604": true, "BW-NODE-0606": true, "BW-NODE-0608": true, "BW-NODE-0610": true,
}

func TestNodeGoodTree(t *testing.T) {
	root := prepareTree(t, "good")
	rep, err := EvaluateNode(context.Background(), NodeOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("errors: %v", rep.Errors)
	}
	asRoot := os.Geteuid() == 0
	seen := map[string]bool{}
	passed := 0
	for _, r := range rep.Results {
		seen[r.Control] = true
		obj := rep.Objects[r.Object]
		switch {
		case r.Status == StatusPass:
			passed++
		case r.Status == StatusFail && ownershipControls[r.Control] && !asRoot:
			// Not root: the copied files belong to the test's user.
		case r.Status == StatusSkipped && (strings.Contains(r.Message, "kube-proxy") || strings.Contains(r.Message, "/usr/lib/systemd") ||
			obj.Name == "(not configured)"):
		default:
			t.Errorf("%s on %s: %s %q", r.Control, obj.Name, r.Status, r.Message)
		}
	}
	for _, c := range rep.Controls {
		if !seen[c.ID] {
			t.Errorf("control %s produced no result", c.ID)
		}
	}
	if passed < 60 {
		t.Errorf("only %d passes", passed)
	}
	// The controller manager and scheduler do not run: their flags come
	// from the static pod manifests.
	v := nodeVerdicts(rep)
	if r, ok := v["BW-NODE-0307 kube-controller-manager"]; !ok || r.Status != StatusPass {
		t.Errorf("static pod controller manager: %+v (ok %v)", r, ok)
	}
	if r := v["BW-NODE-0201 kube-apiserver (pid 101)"]; r.Status != StatusPass {
		t.Errorf("apiserver from /proc: %+v", r)
	}
	for _, s := range rep.Namespaces {
		if s.Name != "node cp-good" {
			t.Errorf("score group %q", s.Name)
		}
	}
}

func TestNodeBadTree(t *testing.T) {
	root := prepareTree(t, "bad")
	rep, err := EvaluateNode(context.Background(), NodeOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	v := nodeVerdicts(rep)
	const api, etcd, kubelet = "kube-apiserver (pid 101)", "etcd (pid 102)", "kubelet (pid 103)"
	type want struct {
		key, msg string
	}
	fails := []want{
		{"BW-NODE-0101 /etc/kubernetes/manifests/kube-apiserver.yaml", "mode 0644; want 0600"},
		{"BW-NODE-0103 /etc/kubernetes/manifests/kube-controller-manager.yaml", "mode 0644"},
		{"BW-NODE-0107 /etc/kubernetes/manifests/etcd.yaml", "mode 0666"},
		{"BW-NODE-0111 /var/lib/etcd", "mode 0755; want 0700"},
		{"BW-NODE-0112 /var/lib/etcd", "want etcd:etcd"},
		{"BW-NODE-0113 /etc/kubernetes/admin.conf", "mode 0644"},
		{"BW-NODE-0115 /etc/kubernetes/scheduler.conf", "mode 0640"},
		{"BW-NODE-0120 /etc/kubernetes/pki", "/etc/kubernetes/pki/ca.crt has mode 0644"},
		{"BW-NODE-0121 /etc/kubernetes/pki", "/etc/kubernetes/pki/ca.key has mode 0644"},
		{"BW-NODE-0201 " + api, `--anonymous-auth=true; want "false"`},
		{"BW-NODE-0202 " + api, "--token-auth-file is set"},
		{"BW-NODE-0204 " + api, "--kubelet-client-certificate and --kubelet-client-key not set"},
		{"BW-NODE-0206 " + api, "--authorization-mode=AlwaysAllow: includes AlwaysAllow"},
		{"BW-NODE-0207 " + api, "does not include Node"},
		{"BW-NODE-0208 " + api, "does not include RBAC"},
		{"BW-NODE-0210 " + api, "includes AlwaysAdmit"},
		{"BW-NODE-0212 " + api, "includes ServiceAccount"},
		{"BW-NODE-0214 " + api, "does not include NodeRestriction"},
		{"BW-NODE-0215 " + api, "--profiling is not set"},
		{"BW-NODE-0216 " + api, "--audit-log-path not set"},
		{"BW-NODE-0217 " + api, "--audit-log-maxage=7; want 30"},
		{"BW-NODE-0221 " + api, "--service-account-lookup=false"},
		{"BW-NODE-0227 " + api, "--encryption-provider-config not set"},
		{"BW-NODE-0229 " + api, "weak suites: TLS_RSA_WITH_AES_128_CBC_SHA"},
		{"BW-NODE-0302 kube-controller-manager", "--profiling"},
		{"BW-NODE-0306 kube-controller-manager", "includes RotateKubeletServerCertificate=false"},
		{"BW-NODE-0307 kube-controller-manager", "--bind-address"},
		{"BW-NODE-0401 kube-scheduler", "--profiling"},
		{"BW-NODE-0501 " + etcd, "--cert-file and --key-file not set"},
		{"BW-NODE-0502 " + etcd, "--client-cert-auth"},
		{"BW-NODE-0503 " + etcd, `--auto-tls is "true"`},
		{"BW-NODE-0506 " + etcd, `--peer-auto-tls is "true"`},
		{"BW-NODE-0601 /etc/systemd/system/kubelet.service.d/10-kubeadm.conf", "mode 0644"},
		{"BW-NODE-0605 /etc/kubernetes/kubelet.conf", "mode 0644"},
		{"BW-NODE-0609 /var/lib/kubelet/config.yaml", "mode 0644"},
		{"BW-NODE-0701 " + kubelet, `anonymous-auth is "true" (from authentication.anonymous.enabled in /var/lib/kubelet/config.yaml)`},
		{"BW-NODE-0702 " + kubelet, `"AlwaysAllow"`},
		{"BW-NODE-0703 " + kubelet, "client-ca-file"},
		{"BW-NODE-0704 " + kubelet, `read-only-port is "10255" (from --read-only-port)`},
		{"BW-NODE-0705 " + kubelet, `"0s"`},
		{"BW-NODE-0706 " + kubelet, `"false"`},
		{"BW-NODE-0710 " + kubelet, "rotateCertificates"},
		{"BW-NODE-0711 " + kubelet, "featureGates.RotateKubeletServerCertificate"},
		{"BW-NODE-0712 " + kubelet, "not set"},
		{"BW-NODE-0713 " + kubelet, `"-1"`},
		{"BW-NODE-0603 /var/lib/kube-proxy/kubeconfig.conf", "mode 0644"},
		{"BW-NODE-0731 kube-proxy (pid 104)", "--metrics-bind-address=0.0.0.0:10249"},
	}
	if os.Geteuid() == 0 {
		fails = append(fails,
			want{"BW-NODE-0104 /etc/kubernetes/manifests/kube-controller-manager.yaml", "owned by 1000:1000; want root:root"},
			want{"BW-NODE-0114 /etc/kubernetes/admin.conf", "owned by 1000:root"},
			want{"BW-NODE-0119 /etc/kubernetes/pki", "/etc/kubernetes/pki/apiserver.key is owned by 1000:1000"},
		)
	}
	for _, w := range fails {
		r, ok := v[w.key]
		if !ok {
			t.Errorf("%s: no result", w.key)
			continue
		}
		if r.Status != StatusFail || !strings.Contains(r.Message, w.msg) {
			t.Errorf("%s: %s %q; want fail containing %q", w.key, r.Status, r.Message, w.msg)
		}
	}
	// Checks the bad tree still passes, so the controls are not all-fail.
	for _, k := range []string{"BW-NODE-0105 /etc/kubernetes/manifests/kube-scheduler.yaml", "BW-NODE-0117 /etc/kubernetes/controller-manager.conf",
		"BW-NODE-0224 " + api, "BW-NODE-0225 " + api, "BW-NODE-0226 " + api, "BW-NODE-0213 " + api} {
		if r := v[k]; r.Status != StatusPass {
			t.Errorf("%s: %s %q; want pass", k, r.Status, r.Message)
		}
	}
	for _, s := range rep.Frameworks {
		if s.Name == FrameworkCIS && (s.Failed < len(fails) || s.Score > 50) {
			t.Errorf("CIS score %+v", s)
		}
	}
}

func TestParseFlags(t *testing.T) {
	got := parseFlags([]string{"--a=b", "--anonymous-auth", "--authorization-mode", "Node,RBAC", "-data-dir", "/x", "--profiling", "positional", "--empty="})
	want := map[string]string{"a": "b", "anonymous-auth": "true", "authorization-mode": "Node,RBAC", "data-dir": "/x", "profiling": "true", "empty": ""}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

// TestNodeRootContainment: a symlink in the tree pointing outside the root
// is not followed out of it.
func TestNodeRootContainment(t *testing.T) {
	root := prepareTree(t, "good")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "admin.conf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc/kubernetes/admin.conf")
	os.Remove(p)
	if err := os.Symlink(filepath.Join(outside, "admin.conf"), p); err != nil {
		t.Fatal(err)
	}
	rep, err := EvaluateNode(context.Background(), NodeOptions{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	r := nodeVerdicts(rep)["BW-NODE-0113 /etc/kubernetes/admin.conf"]
	if r.Status != StatusSkipped || !strings.Contains(r.Message, "cannot stat") {
		t.Errorf("escaping symlink: %s %q; want skipped (cannot stat)", r.Status, r.Message)
	}
}
