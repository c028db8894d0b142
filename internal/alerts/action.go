package alerts

import (
	"strings"
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
	// ActionRestoreScale undoes ActionScaleToZero: the workload the
	// responder scaled to zero gets back the replica count it had (which
	// the responder reported with the scale_to_zero result).
	ActionRestoreScale ActionKind = "restore_scale"
)

// ActionKinds lists every action, in display order.
var ActionKinds = []ActionKind{ActionDeletePod, ActionIsolatePod, ActionScaleToZero, ActionCordonNode,
	ActionUnisolatePod, ActionUncordonNode, ActionRestoreScale}

// Valid reports whether k is one of ActionKinds.
func (k ActionKind) Valid() bool {
	switch k {
	case ActionDeletePod, ActionIsolatePod, ActionScaleToZero, ActionCordonNode, ActionUnisolatePod, ActionUncordonNode,
		ActionRestoreScale:
		return true
	}
	return false
}

// NeedsPod reports whether the action targets a pod (as opposed to a node
// or a workload): central refuses it for an alert without namespace and
// pod. restore_scale does not: the pods of a workload scaled to zero are
// gone, the workload is its target.
func (k ActionKind) NeedsPod() bool {
	return k != ActionCordonNode && k != ActionUncordonNode && k != ActionRestoreScale
}

// NeedsWorkload reports whether the action needs the alert's workload
// (namespace and "Kind/name").
func (k ActionKind) NeedsWorkload() bool { return k == ActionScaleToZero || k == ActionRestoreScale }

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
	case ActionRestoreScale:
		return ActionScaleToZero
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
	// Scaled and Replicas: for a done scale_to_zero, the object the
	// responder scaled ("Deployment/web") and its replica count before;
	// for a restore_scale, the object to scale and the count to restore
	// (copied by central from the scale_to_zero it undoes).
	Scaled   string `json:"scaled,omitempty"`
	Replicas *int32 `json:"replicas,omitempty"`
}

// ActionList is the body of GET /api/v1/actions.
type ActionList struct {
	Actions []Action `json:"actions"`
}

// ActionResult is the body of POST /api/v1/actions/{id}/result.
type ActionResult struct {
	State   ActionState `json:"state"` // done or failed
	Message string      `json:"message,omitempty"`
	// For scale_to_zero: the object scaled ("Deployment/web") and its
	// replica count before (0 when it already was at zero), so central
	// can offer restore_scale.
	Scaled           string `json:"scaled,omitempty"`
	PreviousReplicas *int32 `json:"previous_replicas,omitempty"`
}

// Validate checks a result report: the state must be final.
func (r *ActionResult) Validate() error {
	if r.State != ActionDone && r.State != ActionFailed {
		return invalid("action result state %q (want done or failed)", truncate(string(r.State), 40))
	}
	if len(r.Message) > MaxTitleLen || !utf8.ValidString(r.Message) {
		return invalid("action result message: longer than %d bytes or not UTF-8", MaxTitleLen)
	}
	if r.PreviousReplicas != nil && *r.PreviousReplicas < 0 {
		return invalid("action result previous_replicas %d is negative", *r.PreviousReplicas)
	}
	if r.Scaled != "" && !ValidScaleTarget(r.Scaled) {
		return invalid("action result scaled %q: want Deployment/NAME, StatefulSet/NAME or ReplicaSet/NAME", truncate(r.Scaled, 80))
	}
	return nil
}

// ValidScaleTarget reports whether s names a scalable workload as
// "Kind/name": an apps/v1 Deployment, StatefulSet or ReplicaSet with a
// plausible object name (at most 253 bytes of lower-case letters, digits,
// '-' and '.').
func ValidScaleTarget(s string) bool {
	kind, name, ok := strings.Cut(s, "/")
	if !ok || (kind != "Deployment" && kind != "StatefulSet" && kind != "ReplicaSet") || name == "" || len(name) > 253 {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '.' {
			return false
		}
	}
	return true
}
