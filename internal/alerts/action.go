package alerts

import (
	"time"
	"unicode/utf8"
)

// ActionKind is a response action the in-cluster responder can perform.
type ActionKind string

const (
	// ActionDeletePod deletes the alert's pod (its controller recreates a
	// clean one from the image).
	ActionDeletePod ActionKind = "delete_pod"
	// ActionIsolatePod applies a deny-all NetworkPolicy selecting the pod.
	ActionIsolatePod ActionKind = "isolate_pod"
	// ActionScaleToZero scales the pod's workload to zero replicas.
	ActionScaleToZero ActionKind = "scale_to_zero"
	// ActionCordonNode marks the alert's node unschedulable.
	ActionCordonNode ActionKind = "cordon_node"
	// ActionUnisolatePod undoes ActionIsolatePod: it removes Bulwark's
	// deny-all NetworkPolicy and the pod's isolation label.
	ActionUnisolatePod ActionKind = "unisolate_pod"
	// ActionUncordonNode undoes ActionCordonNode: the node is schedulable
	// again.
	ActionUncordonNode ActionKind = "uncordon_node"
)

// ActionKinds lists every action, in display order.
var ActionKinds = []ActionKind{ActionDeletePod, ActionIsolatePod, ActionScaleToZero, ActionCordonNode,
	ActionUnisolatePod, ActionUncordonNode}

// Valid reports whether k is one of ActionKinds.
func (k ActionKind) Valid() bool {
	switch k {
	case ActionDeletePod, ActionIsolatePod, ActionScaleToZero, ActionCordonNode, ActionUnisolatePod, ActionUncordonNode:
		return true
	}
	return false
}

// NeedsPod reports whether the action targets a pod (as opposed to a node):
// central refuses it for an alert without namespace and pod.
func (k ActionKind) NeedsPod() bool { return k != ActionCordonNode && k != ActionUncordonNode }

// NeedsNode reports whether the action targets the alert's node.
func (k ActionKind) NeedsNode() bool { return k == ActionCordonNode || k == ActionUncordonNode }

// Undoes returns the action k reverses ("" for an action that is not an
// undo): an undo is offered only after that action was done on the alert.
func (k ActionKind) Undoes() ActionKind {
	switch k {
	case ActionUnisolatePod:
		return ActionIsolatePod
	case ActionUncordonNode:
		return ActionCordonNode
	}
	return ""
}

// ActionState is the life of a response action: pending until the
// responder reports done or failed (final).
type ActionState string

const (
	ActionPending ActionState = "pending"
	ActionDone    ActionState = "done"
	ActionFailed  ActionState = "failed"
)

// Valid reports whether s is pending, done or failed.
func (s ActionState) Valid() bool {
	return s == ActionPending || s == ActionDone || s == ActionFailed
}

// ActionRequest is the body of POST /api/v1/alerts/{id}/actions.
type ActionRequest struct {
	Action ActionKind `json:"action"`
	Reason string     `json:"reason,omitempty"`
}

// Action is a requested response action, as GET /api/v1/actions lists it.
// The target (cluster, namespace, pod, workload, node) is copied from the
// alert when the action is requested.
type Action struct {
	ID          int64       `json:"id"`
	AlertID     int64       `json:"alert_id"`
	Action      ActionKind  `json:"action"`
	Cluster     string      `json:"cluster"`
	Namespace   string      `json:"namespace,omitempty"`
	Pod         string      `json:"pod,omitempty"`
	Workload    string      `json:"workload,omitempty"`
	Node        string      `json:"node,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	State       ActionState `json:"state"`
	RequestedBy string      `json:"requested_by"`
	RequestedAt time.Time   `json:"requested_at"`
	// Set when the responder reports the result.
	Message     string     `json:"message,omitempty"`
	CompletedBy string     `json:"completed_by,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
}

// ActionList is the body of GET /api/v1/actions.
type ActionList struct {
	Actions []Action `json:"actions"`
}

// ActionResult is the body of POST /api/v1/actions/{id}/result.
type ActionResult struct {
	State   ActionState `json:"state"` // done or failed
	Message string      `json:"message,omitempty"`
}

// Validate checks a result report: the state must be final.
func (r *ActionResult) Validate() error {
	if r.State != ActionDone && r.State != ActionFailed {
		return invalid("action result state %q (want done or failed)", truncate(string(r.State), 40))
	}
	if len(r.Message) > MaxTitleLen || !utf8.ValidString(r.Message) {
		return invalid("action result message: longer than %d bytes or not UTF-8", MaxTitleLen)
	}
	return nil
}
