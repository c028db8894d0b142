package k8s

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoConfig is returned when no kubeconfig was found and the process is
// not running in a pod.
var ErrNoConfig = errors.New("no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod")

// RESTConfig loads the client configuration, in kubectl's order: an
// explicit kubeconfig path, else $KUBECONFIG (a path list, merged), else
// ~/.kube/config, else the in-cluster service account when running in a
// pod. kubeContext selects a context other than the file's current one; it
// is an error with the in-cluster configuration, which has no contexts.
//
// The order matters for the agents: `bulwark respond` in a pod must pick
// its own ServiceAccount, while an operator running a command from a laptop
// must get the cluster kubectl would talk to, never a surprise.
func RESTConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, then ~/.kube/config
	rules.ExplicitPath = kubeconfig
	if kubeconfig == "" && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" && !exists(clientcmd.RecommendedHomeFile) {
		cfg, err := rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, ErrNoConfig
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		if kubeContext != "" {
			return nil, fmt.Errorf("context %q: no kubeconfig, and the in-cluster configuration has no contexts", kubeContext)
		}
		return cfg, nil
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kubeContext}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		where := kubeconfig
		if where == "" {
			where = filepath.Join("~", ".kube", "config")
			if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
				where = "$KUBECONFIG=" + env
			}
		}
		return nil, fmt.Errorf("load kubeconfig %s: %w", where, err)
	}
	return cfg, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
