// Command kube-apiserver is the upstream Kubernetes API server, built from
// the Go module proxy so Bulwark's tests run against the real thing (see
// internal/k8s/k8stest). It is the same program as upstream's
// cmd/kube-apiserver/apiserver.go; nothing is changed.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // for JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version" // for version metric registration
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	command := app.NewAPIServerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
