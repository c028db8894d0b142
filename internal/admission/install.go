package admission

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// InstallOptions describe the ValidatingWebhookConfiguration.
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

// WebhookConfiguration builds the ValidatingWebhookConfiguration.
func WebhookConfiguration(o InstallOptions) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	if o.Name == "" {
		o.Name = "bulwark-admission"
	}
	if o.TimeoutSeconds == 0 {
		o.TimeoutSeconds = 10
	}
	if o.TimeoutSeconds < 1 || o.TimeoutSeconds > 30 {
		return nil, fmt.Errorf("webhook configuration: timeout %ds: want 1-30", o.TimeoutSeconds)
	}
	fp := admissionregistrationv1.Fail
	switch o.FailurePolicy {
	case "", "Fail":
	case "Ignore":
		fp = admissionregistrationv1.Ignore
	default:
		return nil, fmt.Errorf("webhook configuration: failure policy %q: want Fail or Ignore", o.FailurePolicy)
	}
	if len(o.CABundle) == 0 {
		return nil, fmt.Errorf("webhook configuration: no CA bundle")
	}
	cc := admissionregistrationv1.WebhookClientConfig{CABundle: o.CABundle}
	switch {
	case o.URL != "" && o.ServiceName == "":
		u := o.URL + PathValidate
		cc.URL = &u
	case o.URL == "" && o.ServiceName != "" && o.ServiceNamespace != "":
		p := PathValidate
		port := o.ServicePort
		if port == 0 {
			port = 443
		}
		cc.Service = &admissionregistrationv1.ServiceReference{Namespace: o.ServiceNamespace, Name: o.ServiceName, Path: &p, Port: &port}
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
	nsSel := &metav1.LabelSelector{}
	if len(exclude) > 0 {
		nsSel.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: exclude}}
	}
	none := admissionregistrationv1.SideEffectClassNone
	equiv := admissionregistrationv1.Equivalent
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rules := []admissionregistrationv1.RuleWithOperations{
		{Operations: ops, Rule: rule("", "v1", "pods", "replicationcontrollers")},
		{Operations: ops, Rule: rule("apps", "v1", "deployments", "replicasets", "statefulsets", "daemonsets")},
		{Operations: ops, Rule: rule("batch", "v1", "jobs", "cronjobs")},
	}
	if o.Connect {
		rules = append(rules, admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Connect},
			Rule: rule("", "v1", "pods/exec", "pods/attach", "pods/portforward")})
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: map[string]string{"app.kubernetes.io/managed-by": "bulwark"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "workloads.admission.bulwark.dev", ClientConfig: cc, Rules: rules, FailurePolicy: &fp, MatchPolicy: &equiv,
			NamespaceSelector: nsSel, SideEffects: &none, TimeoutSeconds: &o.TimeoutSeconds,
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
	cur, err := api.Get(ctx, cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create webhook configuration %s: %w", cfg.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get webhook configuration %s: %w", cfg.Name, err)
	}
	cfg.ResourceVersion = cur.ResourceVersion
	if _, err := api.Update(ctx, cfg, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update webhook configuration %s: %w", cfg.Name, err)
	}
	return nil
}
