package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/bulwark-security/bulwark/internal/k8s"
	"github.com/bulwark-security/bulwark/internal/respond"
)

type respondFlags struct {
	server, token, serverCA string
	cluster                 string
	interval                time.Duration
	kubeconfig, kubeContext string
	once                    bool
}

func (a *app) respondCmd() *cobra.Command {
	f := &respondFlags{}
	cmd := &cobra.Command{
		Use:   "respond",
		Short: "Perform response actions requested in central (in-cluster agent)",
		Long: `Runs in the cluster and performs the response actions requested in central's
console or API for this cluster: delete a pod, isolate it (a deny-all
NetworkPolicy selecting only that pod), scale its workload to zero, cordon a
node, and undo an isolation, a cordon or a scale to zero (restore_scale puts
back the replica count recorded when it was scaled). It polls central (GET /api/v1/actions?cluster=NAME&state=pending) and
reports each result, so the cluster needs no inbound port.

Give it an agent token and the ServiceAccount bound to the minimal ClusterRole
in deploy/respond-rbac.yaml. Actions are idempotent: one performed twice (a
result report lost on the way) reports done with what it found.`,
		Example: `  bulwark respond --server https://bulwark.example:8443 --token "$BULWARK_TOKEN" --cluster prod-eu

  # one round from a laptop, with the current kubeconfig context
  bulwark respond --server https://bulwark.example:8443 --server-ca ca.pem --cluster prod-eu --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runRespond(ctx, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "central (https://host:8443)")
	fl.StringVar(&f.token, "token", "", "agent API token for --server (env BULWARK_TOKEN)")
	fl.StringVar(&f.serverCA, "server-ca", "", "PEM file with the CA that signed --server's certificate")
	fl.StringVar(&f.cluster, "cluster", "", "this cluster's name, as in its alerts")
	fl.DurationVar(&f.interval, "interval", 10*time.Second, "time between polls when nothing is pending")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context")
	fl.BoolVar(&f.once, "once", false, "poll once, perform what is pending and exit")
	return cmd
}

func (a *app) runRespond(ctx context.Context, f *respondFlags) error {
	switch {
	case f.server == "":
		return errors.New("--server is required")
	case f.token == "":
		return errors.New("--server needs --token (or BULWARK_TOKEN)")
	case f.cluster == "":
		return errors.New("--cluster is required")
	case f.interval < time.Second:
		return errors.New("--interval must be at least 1s")
	}
	hc, base, err := centralClient(f.server, "--server-ca", f.serverCA, time.Minute)
	if err != nil {
		return err
	}
	cfg, err := k8s.RESTConfig(f.kubeconfig, f.kubeContext)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	agent := &respond.Agent{
		Central:  &respond.Client{BaseURL: base, Token: f.token, HTTP: hc},
		Kube:     cs,
		Cluster:  f.cluster,
		Interval: f.interval,
		Log:      a.log.With("cluster", f.cluster),
	}
	if f.once {
		n, err := agent.Poll(ctx)
		fmt.Fprintf(a.env.Stderr, "bulwark: %d action(s) performed and reported\n", n)
		return err
	}
	a.log.Info("responder started", "server", base, "cluster", f.cluster, "interval", f.interval)
	return agent.Run(ctx)
}
