package admission

import (
	"context"
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// InstallOptions describe the ValidatingWebhookConfiguration (and the
// MutatingWebhookConfiguration of the fixes).
type InstallOptions struct {
	// Name of the configuration (default bulwark-admission).
	Name string
	// Either URL (the webhook outside the cluster, or tests) or Service
	// (namespace/name/port of the in-cluster Service).
	URL              string
	ServiceNamespace string
	ServiceName      string
	ServicePort      int32
	// CABundle is the PEM that signs the serving certificate.
	CABundle []byte
	// FailurePolicy is Fail (default) or Ignore: what the API server does
	// when the webhook cannot be reached or answers with an error.
	FailurePolicy string
	// TimeoutSeconds (default 10, at most 30).
	TimeoutSeconds int32
	// ExcludeNamespaces are never sent to the webhook (default kube-system
	// and the service's namespace, so the webhook can always be repaired).
	ExcludeNamespaces []string
	// Connect also registers pods/exec, pods/attach and pods/portforward.
	Connect bool
}

// webhookParts are what the validating and mutating configurations share.
type webhookParts struct {
	name    string
	cc      admissionregistrationv1.WebhookClientConfig
	rules   []admissionregistrationv1.RuleWithOperations
	fp      admissionregistrationv1.FailurePolicyType
	nsSel   *metav1.LabelSelector
	timeout int32
}

// parts checks o and builds the client configuration for the webhook's
// path.
func (o InstallOptions) parts(path string, connect bool) (*webhookParts, error) {
	w := &webhookParts{name: o.Name, timeout: o.TimeoutSeconds, fp: admissionregistrationv1.Fail}
	if w.name == "" {
		w.name = "bulwark-admission"
	}
	if w.timeout == 0 {
		w.timeout = 10
	}
	if w.timeout < 1 || w.timeout > 30 {
		return nil, fmt.Errorf("webhook configuration: timeout %ds: want 1-30", w.timeout)
	}
	switch o.FailurePolicy {
	case "", "Fail":
	case "Ignore":
		w.fp = admissionregistrationv1.Ignore
	default:
		return nil, fmt.Errorf("webhook configuration: failure policy %q: want Fail or Ignore", o.FailurePolicy)
	}
	if len(o.CABundle) == 0 {
		return nil, fmt.Errorf("webhook configuration: no CA bundle")
	}
	w.cc = admissionregistrationv1.WebhookClientConfig{CABundle: o.CABundle}
	switch {
	case o.URL != "" && o.ServiceName == "":
		u := o.URL + path
		w.cc.URL = &u
	case o.URL == "" && o.ServiceName != "" && o.ServiceNamespace != "":
		port := o.ServicePort
		if port == 0 {
			port = 443
		}
		w.cc.Service = &admissionregistrationv1.ServiceReference{Namespace: o.ServiceNamespace, Name: o.ServiceName, Path: &path, Port: &port}
	default:
		return nil, fmt.Errorf("webhook configuration: give either a URL or a service namespace and name")
	}
	exclude := o.ExcludeNamespaces
	if exclude == nil {
		exclude = []string{"kube-system"}
		if o.ServiceNamespace != "" && o.ServiceNamespace != "kube-system" {
			exclude = append(exclude, o.ServiceNamespace)
		}
	}
	w.nsSel = &metav1.LabelSelector{}
	if len(exclude) > 0 {
		w.nsSel.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: exclude}}
	}
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	w.rules = []admissionregistrationv1.RuleWithOperations{
		{Operations: ops, Rule: rule("", "v1", "pods", "replicationcontrollers")},
		{Operations: ops, Rule: rule("apps", "v1", "deployments", "replicasets", "statefulsets", "daemonsets")},
		{Operations: ops, Rule: rule("batch", "v1", "jobs", "cronjobs")},
	}
	if connect {
		w.rules = append(w.rules, admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Connect},
			Rule: rule("", "v1", "pods/exec", "pods/attach", "pods/portforward")})
	}
	return w, nil
}

// WebhookConfiguration builds the ValidatingWebhookConfiguration.
func WebhookConfiguration(o InstallOptions) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	w, err := o.parts(PathValidate, o.Connect)
	if err != nil {
		return nil, err
	}
	none := admissionregistrationv1.SideEffectClassNone
	equiv := admissionregistrationv1.Equivalent
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: w.name, Labels: map[string]string{"app.kubernetes.io/managed-by": "bulwark"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "workloads.admission.bulwark.dev", ClientConfig: w.cc, Rules: w.rules, FailurePolicy: &w.fp, MatchPolicy: &equiv,
			NamespaceSelector: w.nsSel, SideEffects: &none, TimeoutSeconds: &w.timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, nil
}

// MutatingWebhookConfiguration builds the MutatingWebhookConfiguration of
// the fixes (PathMutate), same name, client, rules and namespaces as the
// validating one. Its failure policy is always Ignore: a fix is a
// convenience, and an object the webhook could not fix is still judged by
// the validating webhook. Reinvocation IfNeeded: if a later mutating
// webhook changes the object, the fixes are applied again.
func MutatingWebhookConfiguration(o InstallOptions) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	o.FailurePolicy = "Ignore"
	w, err := o.parts(PathMutate, false)
	if err != nil {
		return nil, err
	}
	none := admissionregistrationv1.SideEffectClassNone
	equiv := admissionregistrationv1.Equivalent
	again := admissionregistrationv1.IfNeededReinvocationPolicy
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: w.name, Labels: map[string]string{"app.kubernetes.io/managed-by": "bulwark"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "fixes.admission.bulwark.dev", ClientConfig: w.cc, Rules: w.rules, FailurePolicy: &w.fp, MatchPolicy: &equiv,
			NamespaceSelector: w.nsSel, SideEffects: &none, TimeoutSeconds: &w.timeout, ReinvocationPolicy: &again,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, nil
}

func rule(group, version string, resources ...string) admissionregistrationv1.Rule {
	scope := admissionregistrationv1.NamespacedScope
	return admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: &scope}
}

// Apply creates or updates the configuration in the cluster.
func Apply(ctx context.Context, c kubernetes.Interface, cfg *admissionregistrationv1.ValidatingWebhookConfiguration) error {
	api := c.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	return apply(ctx, cfg, &cfg.ObjectMeta, api.Get, func(ctx context.Context) error {
		_, err := api.Create(ctx, cfg, metav1.CreateOptions{})
		return err
	}, func(ctx context.Context) error {
		_, err := api.Update(ctx, cfg, metav1.UpdateOptions{})
		return err
	})
}

// ApplyMutating creates or updates the mutating configuration.
func ApplyMutating(ctx context.Context, c kubernetes.Interface, cfg *admissionregistrationv1.MutatingWebhookConfiguration) error {
	api := c.AdmissionregistrationV1().MutatingWebhookConfigurations()
	return apply(ctx, cfg, &cfg.ObjectMeta, api.Get, func(ctx context.Context) error {
		_, err := api.Create(ctx, cfg, metav1.CreateOptions{})
		return err
	}, func(ctx context.Context) error {
		_, err := api.Update(ctx, cfg, metav1.UpdateOptions{})
		return err
	})
}

func apply[T metav1.Object](ctx context.Context, cfg any, meta *metav1.ObjectMeta, get func(context.Context, string, metav1.GetOptions) (T, error),
	create, update func(context.Context) error) error {
	kind := fmt.Sprintf("%T", cfg)
	kind = kind[strings.LastIndex(kind, ".")+1:]
	cur, err := get(ctx, meta.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if err := create(ctx); err != nil {
			return fmt.Errorf("create %s %s: %w", kind, meta.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get %s %s: %w", kind, meta.Name, err)
	}
	meta.ResourceVersion = cur.GetResourceVersion()
	if err := update(ctx); err != nil {
		return fmt.Errorf("update %s %s: %w", kind, meta.Name, err)
	}
	return nil
}
