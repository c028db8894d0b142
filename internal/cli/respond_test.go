package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/google/uuid"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/server"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestRespondAgainstCentral runs `bulwark respond --once` against a real
// central (SQLite store, TLS) and a real kube-apiserver: actions requested
// through central's API for this cluster are performed and their results
// recorded; another cluster's action is left alone.
func TestRespondAgainstCentral(t *testing.T) {
	kc := k8stest.Start(t, k8stest.Options{})
	ctx := context.Background()
	kc.Namespace(t, "shop")
	for _, name := range []string{"miner", "debug"} {
		_, err := kc.Client.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/x:1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kc.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	c := startRespondCentral(t)
	now := time.Now().UTC()
	in := []store.AlertIn{
		{ID: uuid.NewString(), Time: now, Source: "sensor", Rule: "Crypto miner", Severity: alerts.SeverityCritical, Title: "miner", Cluster: "prod", Namespace: "shop", Pod: "miner", Node: "node-1"},
		{ID: uuid.NewString(), Time: now, Source: "sensor", Rule: "Shell in container", Severity: alerts.SeverityHigh, Title: "shell", Cluster: "prod", Namespace: "shop", Pod: "debug", Node: "node-1", Workload: "Deployment/debug"},
		{ID: uuid.NewString(), Time: now, Source: "sensor", Rule: "Crypto miner", Severity: alerts.SeverityCritical, Title: "miner", Cluster: "staging", Namespace: "shop", Pod: "miner"},
	}
	if _, _, err := c.st.IngestAlerts(ctx, in); err != nil {
		t.Fatal(err)
	}
	alertIDs := map[string]int64{}
	var list struct {
		Items []struct {
			ID      int64
			Pod     string
			Cluster string
			Rule    string
		} `json:"items"`
	}
	c.call(t, "GET", "/api/v1/alerts?limit=100", c.admin, nil, &list)
	for _, a := range list.Items {
		alertIDs[a.Cluster+"/"+a.Pod+"/"+a.Rule] = a.ID
	}
	request := func(key string, kind alerts.ActionKind) alerts.Action {
		id, ok := alertIDs[key]
		if !ok {
			t.Fatalf("no alert %s in %v", key, alertIDs)
		}
		var a alerts.Action
		c.call(t, "POST", fmt.Sprintf("/api/v1/alerts/%d/actions", id), c.admin, alerts.ActionRequest{Action: kind, Reason: "test"}, &a)
		return a
	}
	del := request("prod/miner/Crypto miner", alerts.ActionDeletePod)
	cordon := request("prod/miner/Crypto miner", alerts.ActionCordonNode)
	scale := request("prod/debug/Shell in container", alerts.ActionScaleToZero) // a bare pod: fails
	other := request("staging/miner/Crypto miner", alerts.ActionDeletePod)

	code, stderr := c.respondOnce(ctx, kc.Kubeconfig)
	if code != ExitOK {
		t.Fatalf("respond exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "3 action(s)") {
		t.Errorf("stderr %q, want 3 actions reported", stderr)
	}

	if _, err := kc.Client.CoreV1().Pods("shop").Get(ctx, "miner", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod miner not deleted: %v", err)
	}
	node, err := kc.Client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil || !node.Spec.Unschedulable {
		t.Errorf("node not cordoned: %v", err)
	}
	var all alerts.ActionList
	c.call(t, "GET", "/api/v1/actions?limit=100", c.admin, nil, &all)
	got := map[int64]alerts.Action{}
	for _, a := range all.Actions {
		got[a.ID] = a
	}
	for _, want := range []struct {
		id    int64
		state alerts.ActionState
		msg   string
	}{
		{del.ID, alerts.ActionDone, "pod shop/miner deleted"},
		{cordon.ID, alerts.ActionDone, "node node-1 cordoned"},
		{scale.ID, alerts.ActionFailed, "bare pod"},
		{other.ID, alerts.ActionPending, ""},
	} {
		a := got[want.id]
		if a.State != want.state || !strings.Contains(a.Message, want.msg) {
			t.Errorf("action %d (%s %s/%s): state %q message %q; want %q containing %q", want.id, a.Action, a.Cluster, a.Pod, a.State, a.Message, want.state, want.msg)
		}
		if want.state != alerts.ActionPending && !strings.HasPrefix(a.CompletedBy, "token:") {
			t.Errorf("action %d completed by %q, want the agent token", want.id, a.CompletedBy)
		}
	}

	// Undo: the node was cordoned (done), so central accepts uncordon_node
	// and the next round performs it.
	uncordon := request("prod/miner/Crypto miner", alerts.ActionUncordonNode)
	code, stderr = c.respondOnce(ctx, kc.Kubeconfig)
	if code != ExitOK {
		t.Fatalf("respond (undo) exited %d: %s", code, stderr)
	}
	if node, err := kc.Client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{}); err != nil || node.Spec.Unschedulable {
		t.Errorf("node still cordoned after uncordon_node: %v", err)
	}
	var undone alerts.ActionList
	c.call(t, "GET", "/api/v1/actions?limit=100", c.admin, nil, &undone)
	for _, a := range undone.Actions {
		if a.ID == uncordon.ID && (a.State != alerts.ActionDone || !strings.Contains(a.Message, "node node-1 uncordoned")) {
			t.Errorf("uncordon action: %q %q", a.State, a.Message)
		}
	}

	// Usage errors say what is missing.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"respond", "--cluster", "prod"}, "--server is required"},
		{[]string{"respond", "--server", "http://central.example:8443", "--cluster", "prod"}, "plain HTTP"},
		{[]string{"respond", "--server", c.url}, "--cluster is required"},
	} {
		var errb bytes.Buffer
		code := Main(ctx, Env{Args: tc.args, Stdout: io.Discard, Stderr: &errb, Getenv: func(k string) string {
			if k == "BULWARK_TOKEN" {
				return "x"
			}
			return ""
		}})
		if code != ExitError || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

type respondCentral struct {
	st           *store.Store
	url, caPath  string
	admin, agent string
	client       *http.Client
}

func startRespondCentral(t *testing.T) *respondCentral {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "bulwark.db"), store.Options{SecretKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", DataDir: dir, Workers: -1, SweepInterval: -1, DBWatchInterval: -1, DBDir: filepath.Join(dir, "db")},
		server.Deps{Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c := &respondCentral{st: st, url: srv.URL(), caPath: filepath.Join(dir, "tls", "self-signed.crt")}
	if _, err := os.Stat(c.caPath); err != nil {
		t.Fatalf("central's self-signed certificate: %v", err)
	}
	if c.client, _, err = centralClient(c.url, "--server-ca", c.caPath, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c.admin, _, err = st.CreateToken(ctx, "test-admin", store.RoleAdmin, time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	if c.agent, _, err = st.CreateToken(ctx, "test-agent", store.RoleAgent, time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// respondOnce runs one round of `bulwark respond --once` for cluster prod
// with the agent's token, as the responder in a cluster would; it returns
// the exit code and what the command wrote on stderr.
func (c *respondCentral) respondOnce(ctx context.Context, kubeconfig string) (int, string) {
	var stderr bytes.Buffer
	code := Main(ctx, Env{Args: []string{"respond", "--server", c.url, "--server-ca", c.caPath, "--cluster", "prod",
		"--kubeconfig", kubeconfig, "--once"}, Stdout: io.Discard, Stderr: &stderr,
		Getenv: func(k string) string {
			if k == "BULWARK_TOKEN" {
				return c.agent
			}
			return ""
		}})
	return code, stderr.String()
}

func (c *respondCentral) call(t *testing.T, method, path, token string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}
