// Command etcd is the upstream etcd server, built from the Go module proxy
// at the version kube-apiserver is built against, as the test store for
// internal/k8s/k8stest. It is upstream's main.go; nothing is changed.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
