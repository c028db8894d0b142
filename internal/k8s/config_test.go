package k8s_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulwark-security/bulwark/internal/k8s"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
)

// TestRESTConfig loads the harness's admin kubeconfig through each source
// and checks the result reaches the real API server.
func TestRESTConfig(t *testing.T) {
	c := k8stest.Start(t, k8stest.Options{})

	// A second file with two contexts: the current one points nowhere, so
	// only an honoured context override reaches the cluster.
	multi, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	multi.Clusters["nowhere"] = multi.Clusters["cluster"].DeepCopy()
	multi.Clusters["nowhere"].Server = "https://127.0.0.1:1"
	cur := multi.Contexts[multi.CurrentContext]
	multi.Contexts["real"] = cur.DeepCopy()
	cur.Cluster = "nowhere"
	multiPath := filepath.Join(t.TempDir(), "multi.kubeconfig")
	if err := clientcmd.WriteToFile(*multi, multiPath); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path, context, env string
		wantHost                 string
		wantErr                  string
	}{
		{name: "explicit path", path: c.Kubeconfig, wantHost: c.Config.Host},
		{name: "KUBECONFIG", env: c.Kubeconfig, wantHost: c.Config.Host},
		{name: "explicit beats KUBECONFIG", path: c.Kubeconfig, env: "/nonexistent/kubeconfig", wantHost: c.Config.Host},
		{name: "context override", path: multiPath, context: "real", wantHost: c.Config.Host},
		{name: "current context", path: multiPath, wantHost: "https://127.0.0.1:1"},
		{name: "unknown context", path: multiPath, context: "nope", wantErr: `context "nope"`},
		{name: "missing file", path: "/nonexistent/kubeconfig", wantErr: "/nonexistent/kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			cfg, err := k8s.RESTConfig(tc.path, tc.context)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost {
				t.Fatalf("host %s, want %s", cfg.Host, tc.wantHost)
			}
			if cfg.Host != c.Config.Host {
				return
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
				t.Fatalf("the loaded config does not reach the cluster: %v", err)
			}
		})
	}
}

func TestRESTConfigNone(t *testing.T) {
	if _, err := os.Stat(clientcmd.RecommendedHomeFile); err == nil {
		t.Skipf("%s exists on this machine; the no-config case cannot be observed", clientcmd.RecommendedHomeFile)
	}
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	_, err := k8s.RESTConfig("", "")
	if !errors.Is(err, k8s.ErrNoConfig) {
		t.Fatalf("err = %v, want ErrNoConfig", err)
	}
}
