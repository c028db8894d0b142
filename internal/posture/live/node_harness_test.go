package live_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/posture"
)

// pidOf finds the process whose command line runs bin with an argument
// containing marker (the cluster's own directory: other clusters may run
// on the same host).
func pidOf(t *testing.T, bin, marker string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if filepath.Base(args[0]) == bin && strings.Contains(string(data), marker) {
			return pid
		}
	}
	t.Fatalf("no %s process with %q", bin, marker)
	return 0
}

// TestNodeAgainstHarness runs the node checks on this host while the
// harness's kube-apiserver and etcd run, and checks the verdicts on those
// very processes' flags, read from /proc.
func TestNodeAgainstHarness(t *testing.T) {
	strong := "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
	c := k8stest.Start(t, k8stest.Options{
		AuditPolicy: "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
		ExtraArgs:   []string{"--anonymous-auth=false", "--profiling=false", "--tls-cipher-suites=" + strong},
	})
	api := pidOf(t, "kube-apiserver", c.Dir)
	etcd := pidOf(t, "etcd", c.Dir)
	// The data directory as the harness passed it to etcd.
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(etcd), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := ""
	for _, a := range strings.Split(string(cmdline), "\x00") {
		if v, ok := strings.CutPrefix(a, "--data-dir="); ok {
			dataDir = v
		}
	}
	if dataDir == "" {
		t.Fatalf("etcd runs without --data-dir=: %q", cmdline)
	}
	rep, err := posture.EvaluateNode(context.Background(), posture.NodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]posture.Result{}
	for _, r := range rep.Results {
		v[r.Control+" "+rep.Objects[r.Object].Name] = r
	}
	apiName := "kube-apiserver (pid " + strconv.Itoa(api) + ")"
	etcdName := "etcd (pid " + strconv.Itoa(etcd) + ")"
	for _, w := range []struct {
		control, obj string
		status       posture.Status
		msg          string
	}{
		{"BW-NODE-0201", apiName, posture.StatusPass, ""}, // --anonymous-auth=false
		{"BW-NODE-0206", apiName, posture.StatusPass, ""}, // --authorization-mode=Node,RBAC
		{"BW-NODE-0207", apiName, posture.StatusPass, ""}, // includes Node
		{"BW-NODE-0208", apiName, posture.StatusPass, ""}, // includes RBAC
		{"BW-NODE-0215", apiName, posture.StatusPass, ""}, // --profiling=false
		{"BW-NODE-0216", apiName, posture.StatusPass, ""}, // --audit-log-path set by the harness
		{"BW-NODE-0229", apiName, posture.StatusPass, ""}, // strong ciphers only
		{"BW-NODE-0224", apiName, posture.StatusPass, ""}, // serving cert
		{"BW-NODE-0225", apiName, posture.StatusPass, ""}, // --client-ca-file
		{"BW-NODE-0202", apiName, posture.StatusPass, ""}, // no token file
		{"BW-NODE-0217", apiName, posture.StatusFail, "--audit-log-maxage is not set"},
		{"BW-NODE-0214", apiName, posture.StatusFail, "does not include NodeRestriction"},
		{"BW-NODE-0223", apiName, posture.StatusFail, "--etcd-certfile and --etcd-keyfile not set"},
		{"BW-NODE-0204", apiName, posture.StatusFail, "--kubelet-client-certificate"},
		{"BW-NODE-0501", etcdName, posture.StatusFail, "--cert-file and --key-file not set"},
		{"BW-NODE-0502", etcdName, posture.StatusFail, "--client-cert-auth is not set"},
		{"BW-NODE-0503", etcdName, posture.StatusPass, ""},
		{"BW-NODE-0111", dataDir, posture.StatusPass, ""}, // etcd creates its data dir 0700
	} {
		r, ok := v[w.control+" "+w.obj]
		if !ok {
			t.Errorf("%s on %s: no result", w.control, w.obj)
			continue
		}
		if r.Status != w.status || !strings.Contains(r.Message, w.msg) {
			t.Errorf("%s on %s: %s %q; want %s containing %q", w.control, w.obj, r.Status, r.Message, w.status, w.msg)
		}
	}
}
