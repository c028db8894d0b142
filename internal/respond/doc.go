// Package respond performs Bulwark's response actions on a cluster — delete
// a pod, isolate it behind a deny-all NetworkPolicy, scale its workload to
// zero, cordon a node, and undo the last three (unisolate, restore the
// replica count, uncordon) — and runs the in-cluster agent (`bulwark respond`)
// that pulls pending actions from central and reports their results.
//
// Pull, not push: the agent polls central over HTTPS with an agent token, so
// a cluster needs no inbound port and central holds no cluster credentials.
// The agent's ServiceAccount is bound to the minimal ClusterRole in
// deploy/respond-rbac.yaml; a test checks every action works with exactly
// that role and fails without it.
//
// Every action is idempotent (a retried or duplicated action reports done
// with what it found), and every failure says which object and why.
//
// It must not import internal/store or internal/server: the agent talks to
// central only through its HTTP API (shapes from internal/alerts).
package respond
