package audit

// RecommendedPolicy is the audit policy (kube-apiserver --audit-policy-file)
// Bulwark's default rules are written for: request bodies
// for writes (the rules read pod specs, bindings, roles, services), no
// RequestReceived stage (every request would be sent twice), nothing for
// high-volume read-only noise of the control plane's own components.
const RecommendedPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-proxy", "system:kube-scheduler", "system:kube-controller-manager", "system:apiserver"]
  verbs: ["get", "watch"]
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: ["secrets", "configmaps", "serviceaccounts/token"]
- level: Request
`
