package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/bulwark-security/bulwark/internal/admission"
	"github.com/bulwark-security/bulwark/internal/celeval"
	"github.com/bulwark-security/bulwark/internal/k8s"
	"github.com/bulwark-security/bulwark/internal/policy"
)

func (a *app) admissionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admission",
		Short: "Run or install the validating admission webhook that gates deployments",
		Example: `  bulwark admission serve --policy /etc/bulwark/policies --server https://bulwark:8443 --token "$TOKEN"
  bulwark admission install --service-namespace bulwark --service-name bulwark-admission --cert-dir certs -o webhook.yaml`,
	}
	cmd.AddCommand(a.admissionServeCmd(), a.admissionInstallCmd())
	return cmd
}

// centralTLS is the TLS configuration for calls to central.
func centralTLS(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read --server-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--server-ca %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// centralImages is the image source over central's findings API.
func (a *app) centralImages(server, token, caFile string) (*admission.Images, error) {
	if token == "" {
		return nil, fmt.Errorf("--server needs --token (or BULWARK_TOKEN)")
	}
	tc, err := centralTLS(caFile)
	if err != nil {
		return nil, err
	}
	return admission.NewImages(admission.CentralConfig{URL: server, Token: token, TLS: tc}, nil), nil
}

// kubeClient loads a client through internal/k8s (kubectl's order, then
// in-cluster).
func kubeClient(kubeconfig, kubeContext string) (kubernetes.Interface, error) {
	cfg, err := k8s.RESTConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return kubernetes.NewForConfig(cfg)
}

type admissionServeFlags struct {
	listen, server, token, serverCA, cluster string
	policies                                 []string
	policyInterval                           time.Duration
	policyFromServer                         bool
	tlsCert, tlsKey, certDir                 string
	dnsNames, ips                            []string
	failOpen                                 bool
	cacheTTL, staleTTL                       time.Duration
	kubeconfig, kubeContext                  string
	noNamespaces                             bool
	paramsNamespace                          string
	insecureRegistries                       []string
	recordAllowed                            bool
	maxBody                                  int64
}

func (a *app) admissionServeCmd() *cobra.Command {
	f := &admissionServeFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the validating admission webhook (HTTPS, admission.k8s.io/v1)",
		Long: `Serve the admission webhook on --listen (POST /validate; POST /mutate for the
fixes of policies with configuration.mutate, registered by install --mutating;
/healthz, /readyz and /metrics beside it).

Policies are read from --policy files and directories and re-read when they
change (polled every --policy-interval); a reload that fails keeps the
previous policies and logs the errors with their file:line.

With --policy-from-server the policy documents stored on central (PUT
/api/v1/admission/policies/{name}) are also polled every --policy-interval
(with If-None-Match: an unchanged set costs a 304) and combined with the
local files into one set; a policy name defined twice is an error. A
central set that does not load (logged with its central:<name>:<line>)
keeps the previous policies, and so does central being unreachable. --policy
is then optional, but without it the webhook refuses to start until it has
fetched central's policies once.

Image findings come from central (--server, an agent --token), by digest;
tags are resolved to digests with a registry HEAD. Verdicts are cached
(--cache-ttl). When central is unreachable: a cached verdict up to
--stale-ttl old is used; without one the image is a violation of each
vulnerability rule in scope (fail-closed), or admitted with a warning when
--fail-open is set. The API server's own failurePolicy (bulwark admission
install --failure-policy) applies when the webhook itself is down or
refuses a malformed request.

TLS: --tls-cert/--tls-key (e.g. from cert-manager; reloaded when the files
change), or a CA and serving certificate generated into --cert-dir and
renewed when a third of their validity is left (install reads the CA
bundle from the same directory).

Every decision with a violation (and every exec/attach/port-forward) is sent
to central in batches; denials and warnings also become alerts.

Memory and CPU: the garbage collector runs with GOGC=400 and a 48 MiB soft
memory limit (fewer collections under load, resident memory under 100 MB),
and Go's scheduler on one P (GOMAXPROCS=1: a review's goroutine hand-offs
stay on one thread instead of waking others, which shortens the latency
tail; one P served 2,500 reviews/s in tests). Set the GOGC, GOMEMLIMIT or
GOMAXPROCS environment variables to override any of them (raise GOMEMLIMIT
with the pod's memory limit when many images are cached, GOMAXPROCS with
its CPU limit for more reviews per second than one CPU carries).`,
		Example: `  bulwark admission serve --policy /etc/bulwark/policies --cert-dir /var/run/bulwark \
    --dns-name bulwark-admission.bulwark.svc --server https://bulwark.bulwark.svc:8443 --token "$BULWARK_TOKEN" --cluster prod-eu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.runAdmissionServe(ctx, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", ":8443", "HTTPS address")
	fl.StringSliceVar(&f.policies, "policy", nil, "policy file or directory (repeatable)")
	fl.DurationVar(&f.policyInterval, "policy-interval", 10*time.Second, "how often policy files (and, with --policy-from-server, central) are checked for changes")
	fl.BoolVar(&f.policyFromServer, "policy-from-server", false, "also load the admission policies stored on --server (combined with --policy files; polled every --policy-interval)")
	fl.StringVar(&f.server, "server", "", "central (https://host:8443) for image findings and decision records")
	fl.StringVar(&f.token, "token", "", "agent API token for --server (env BULWARK_TOKEN)")
	fl.StringVar(&f.serverCA, "server-ca", "", "PEM file with the CA that signed --server's certificate")
	fl.StringVar(&f.cluster, "cluster", "", "cluster name in decision records and alerts")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serving certificate (PEM; watched)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "serving key (PEM; watched)")
	fl.StringVar(&f.certDir, "cert-dir", "", "directory for a generated CA and serving certificate (when --tls-cert is not set)")
	fl.StringSliceVar(&f.dnsNames, "dns-name", nil, "DNS name of the generated certificate (repeatable)")
	fl.StringSliceVar(&f.ips, "ip", nil, "IP address of the generated certificate (repeatable)")
	fl.BoolVar(&f.failOpen, "fail-open", false, "admit (with a warning) images whose findings cannot be had when central is unreachable and nothing is cached")
	fl.DurationVar(&f.cacheTTL, "cache-ttl", 5*time.Minute, "how long an image verdict from central is fresh")
	fl.DurationVar(&f.staleTTL, "stale-ttl", 24*time.Hour, "how long a cached verdict may be used while central is unreachable")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for namespace lookups (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context")
	fl.BoolVar(&f.noNamespaces, "no-namespace-lookup", false, "do not read namespaces or ConfigMaps (namespace selectors then always match; paramRef rules deny)")
	fl.StringVar(&f.paramsNamespace, "params-namespace", cmp.Or(os.Getenv("POD_NAMESPACE"), "bulwark"),
		"namespace of the ConfigMaps policies name in spec.paramRef (default $POD_NAMESPACE, else bulwark)")
	fl.StringSliceVar(&f.insecureRegistries, "insecure-registry", nil, "registry host reached over plain HTTP for tag resolution (tests only)")
	fl.BoolVar(&f.recordAllowed, "record-allowed", false, "also send plain allows to central (default: only decisions with violations, exemptions or notes)")
	fl.Int64Var(&f.maxBody, "max-body-bytes", 8<<20, "largest AdmissionReview accepted")
	return cmd
}

func (a *app) runAdmissionServe(ctx context.Context, f *admissionServeFlags) error {
	if len(f.policies) == 0 && !f.policyFromServer {
		return errors.New("--policy is required (or --policy-from-server)")
	}
	if f.policyFromServer && f.server == "" {
		return errors.New("--policy-from-server needs --server")
	}
	log := a.log
	defer admission.TuneRuntime(admission.RuntimeConfig{}, os.Getenv)()
	log.Info("admission runtime", "settings", admission.RuntimeSummary())
	env, err := celeval.NewEnv()
	if err != nil {
		return err
	}
	loader, err := policy.NewLoader(env, nil)
	if err != nil {
		return err
	}
	watcher, err := policy.NewWatcher(ctx, loader, f.policies, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ips []net.IP
	for _, s := range f.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--ip %q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	var tc *tls.Config
	if f.server != "" {
		if f.token == "" {
			return errors.New("--server needs --token (or BULWARK_TOKEN)")
		}
		if tc, err = centralTLS(f.serverCA); err != nil {
			return err
		}
	}
	var policySync *admission.PolicySync
	if f.policyFromServer {
		policySync = admission.NewPolicySync(admission.PolicySyncConfig{URL: f.server, Token: f.token, TLS: tc, Interval: f.policyInterval}, watcher, log)
		if err := policySync.Sync(ctx); err != nil {
			if len(f.policies) == 0 {
				return fmt.Errorf("no --policy files, and central's policies could not be loaded: %w", err)
			}
			log.Error("central's admission policies not loaded; starting with the local files only", "err", err)
		}
	}
	m := admission.NewMetrics(reg)
	images := admission.NewImages(admission.CentralConfig{URL: f.server, Token: f.token, TLS: tc, CacheTTL: f.cacheTTL,
		StaleTTL: f.staleTTL, InsecureRegistries: f.insecureRegistries}, m)
	recorder := admission.NewRecorder(admission.RecorderConfig{URL: f.server, Token: f.token, TLS: tc, RecordAllowed: f.recordAllowed}, log, m)
	certDir := f.certDir
	if f.tlsCert == "" && certDir == "" {
		return errors.New("set --tls-cert/--tls-key, or --cert-dir for a generated certificate")
	}
	certs, err := admission.NewCerts(admission.CertConfig{CertFile: f.tlsCert, KeyFile: f.tlsKey, Dir: certDir, DNSNames: f.dnsNames, IPs: ips}, log, m)
	if err != nil {
		return err
	}
	deps := admission.Deps{Policies: watcher, Images: images, Recorder: recorder, Certs: certs, Logger: log, Registry: reg, Metrics: m}
	if !f.noNamespaces {
		cfg, err := k8s.RESTConfig(f.kubeconfig, f.kubeContext)
		var kc kubernetes.Interface
		if err == nil {
			kc, err = kubernetes.NewForConfig(cfg)
		}
		var po *admission.ClientParamObjects
		if err == nil {
			po, err = admission.NewClientParamObjects(cfg, 0)
		}
		if err != nil {
			log.Warn("namespace and parameter lookups disabled: no Kubernetes client (namespace selectors always match, paramRef rules deny)", "err", err)
		} else {
			deps.Namespaces = admission.NewClientNamespaces(kc, 0)
			deps.Params = admission.NewClientConfigMaps(kc, f.paramsNamespace, 0)
			deps.ParamObjects = po
		}
	}
	srv, err := admission.New(admission.Config{Listen: f.listen, FailOpen: f.failOpen, Cluster: f.cluster, MaxBodyBytes: f.maxBody}, deps)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stderr, "bulwark admission: serving https://%s%s with %d policies (version %s)\n",
		srv.Addr(), admission.PathValidate, len(watcher.Current().Policies()), watcher.Current().Version())
	go watcher.Run(ctx, f.policyInterval)
	if policySync != nil {
		go policySync.Run(ctx)
	}
	go certs.Run(ctx)
	done := make(chan struct{})
	go func() { recorder.Run(ctx); close(done) }()
	err = srv.Run(ctx)
	<-done
	return err
}

type admissionInstallFlags struct {
	name, url, serviceNamespace, serviceName string
	servicePort, timeout                     int32
	caFile, certDir, failurePolicy, output   string
	exclude, dnsNames                        []string
	connect, apply                           bool
	kubeconfig, kubeContext                  string
	mutating                                 bool
}

func (a *app) admissionInstallCmd() *cobra.Command {
	f := &admissionInstallFlags{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Write or apply the ValidatingWebhookConfiguration for the webhook",
		Long: `Build the ValidatingWebhookConfiguration that sends pods and pod controllers
(CREATE, UPDATE) — and with --connect pods/exec, attach and portforward — to the
webhook, with its CA bundle, and write it (-o FILE, default stdout) or apply it
(--apply, through --kubeconfig or in-cluster credentials).

The CA bundle is --ca-file, or the ca.crt of --cert-dir (generated there,
with a serving certificate for --dns-name, if missing: give serve the same
--cert-dir).

kube-system and the webhook's own namespace (--service-namespace) are
excluded through a namespaceSelector, so the webhook can always be repaired;
--exclude-namespace replaces that list.

--failure-policy is what the API server does when the webhook is down or
refuses a malformed request: Fail (default: nothing is admitted unjudged) or
Ignore (admitted unjudged).

--mutating adds the MutatingWebhookConfiguration (same name, path /mutate)
that fixes the controls policies list under configuration.mutate before the
object is judged; its failure policy is always Ignore (unfixed objects are
still judged).`,
		Example: `  bulwark admission install --service-namespace bulwark --service-name bulwark-admission \
    --cert-dir certs --dns-name bulwark-admission.bulwark.svc -o webhook.yaml
  bulwark admission install --url https://10.0.0.5:8443 --ca-file ca.crt --failure-policy Ignore --apply`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runAdmissionInstall(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "bulwark-admission", "name of the ValidatingWebhookConfiguration")
	fl.StringVar(&f.url, "url", "", "the webhook's base URL, when it runs outside the cluster (https://host:port)")
	fl.StringVar(&f.serviceNamespace, "service-namespace", "", "namespace of the webhook's Service")
	fl.StringVar(&f.serviceName, "service-name", "", "name of the webhook's Service")
	fl.Int32Var(&f.servicePort, "service-port", 443, "port of the webhook's Service")
	fl.Int32Var(&f.timeout, "timeout", 10, "seconds the API server waits for the webhook (1-30)")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle that signed the serving certificate")
	fl.StringVar(&f.certDir, "cert-dir", "", "directory of the generated certificates (ca.crt), shared with serve")
	fl.StringSliceVar(&f.dnsNames, "dns-name", nil, "DNS names for a certificate generated into --cert-dir (default: the Service's names)")
	fl.StringVar(&f.failurePolicy, "failure-policy", "Fail", "Fail or Ignore: what the API server does when the webhook cannot answer")
	fl.StringSliceVar(&f.exclude, "exclude-namespace", nil, "namespaces never sent to the webhook (default kube-system and --service-namespace)")
	fl.BoolVar(&f.connect, "connect", false, "also judge pods/exec, pods/attach and pods/portforward")
	fl.BoolVar(&f.mutating, "mutating", false, "also write/apply the MutatingWebhookConfiguration that applies the policies' fixes (configuration.mutate)")
	fl.StringVarP(&f.output, "output", "o", "", "write the YAML here instead of stdout")
	fl.BoolVar(&f.apply, "apply", false, "create or update it in the cluster")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --apply (default: $KUBECONFIG, ~/.kube/config, then in-cluster)")
	fl.StringVar(&f.kubeContext, "context", "", "kubeconfig context for --apply")
	_ = cmd.RegisterFlagCompletionFunc("failure-policy", cobra.FixedCompletions([]string{"Fail", "Ignore"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (a *app) runAdmissionInstall(ctx context.Context, f *admissionInstallFlags) error {
	var ca []byte
	var err error
	switch {
	case f.caFile != "":
		if ca, err = os.ReadFile(f.caFile); err != nil {
			return fmt.Errorf("read --ca-file: %w", err)
		}
	case f.certDir != "":
		names := f.dnsNames
		if len(names) == 0 && f.serviceName != "" {
			base := f.serviceName + "." + f.serviceNamespace
			names = []string{f.serviceName, base, base + ".svc", base + ".svc.cluster.local"}
		}
		certs, err := admission.NewCerts(admission.CertConfig{Dir: f.certDir, DNSNames: names}, a.log, nil)
		if err != nil {
			return err
		}
		ca = certs.CABundle()
	default:
		return errors.New("give --ca-file or --cert-dir")
	}
	var exclude []string
	if len(f.exclude) > 0 {
		exclude = f.exclude
	}
	opts := admission.InstallOptions{Name: f.name, URL: strings.TrimSuffix(f.url, "/"),
		ServiceNamespace: f.serviceNamespace, ServiceName: f.serviceName, ServicePort: f.servicePort, CABundle: ca,
		FailurePolicy: f.failurePolicy, TimeoutSeconds: f.timeout, ExcludeNamespaces: exclude, Connect: f.connect}
	cfg, err := admission.WebhookConfiguration(opts)
	if err != nil {
		return err
	}
	var mcfg *admissionregistrationv1.MutatingWebhookConfiguration
	if f.mutating {
		if mcfg, err = admission.MutatingWebhookConfiguration(opts); err != nil {
			return err
		}
	}
	if f.apply {
		kc, err := kubeClient(f.kubeconfig, f.kubeContext)
		if err != nil {
			return err
		}
		if err := admission.Apply(ctx, kc, cfg); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stderr, "bulwark admission: ValidatingWebhookConfiguration %s applied (failurePolicy %s)\n", cfg.Name, f.failurePolicy)
		if mcfg != nil {
			if err := admission.ApplyMutating(ctx, kc, mcfg); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "bulwark admission: MutatingWebhookConfiguration %s applied (failurePolicy Ignore)\n", mcfg.Name)
		}
		if f.output == "" {
			return nil
		}
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode webhook configuration: %w", err)
	}
	if mcfg != nil {
		my, err := yaml.Marshal(mcfg)
		if err != nil {
			return fmt.Errorf("encode webhook configuration: %w", err)
		}
		y = append(append(y, "---\n"...), my...)
	}
	if f.output != "" {
		return os.WriteFile(filepath.Clean(f.output), y, 0o644)
	}
	_, err = a.env.Stdout.Write(y)
	return err
}
