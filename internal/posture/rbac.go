package posture

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// grants reports whether rule allows verb on resource ("pods/exec") in the
// core or any API group; "*" in a rule matches everything.
func grants(rule rbacv1.PolicyRule, verb, group, resource string) bool {
	if len(rule.NonResourceURLs) > 0 && len(rule.Resources) == 0 {
		return false
	}
	return matchAny(rule.Verbs, verb) && matchAny(rule.APIGroups, group) && matchAny(rule.Resources, resource)
}

func matchAny(list []string, v string) bool {
	for _, s := range list {
		if s == "*" || s == v {
			return true
		}
	}
	return false
}

// ruleCheck fails a Role/ClusterRole whose rules grant any of the
// (verb, group, resource) triples.
func ruleCheck(what string, triples [][3]string) checkFn {
	return func(_ *Config, t *target) outcome {
		var f failures
		for i, r := range t.rules {
			var hit []string
			for _, tr := range triples {
				if grants(r, tr[0], tr[1], tr[2]) {
					hit = append(hit, tr[0]+" "+tr[2])
				}
			}
			if len(hit) > 0 {
				f.add(fmt.Sprintf("rules[%d] grants %s (%s)", i, what, strings.Join(hit, ", ")))
			}
		}
		return f.outcome()
	}
}

func checkWildcards(_ *Config, t *target) outcome {
	var f failures
	for i, r := range t.rules {
		var fields []string
		for _, fl := range []struct {
			name string
			v    []string
		}{{"apiGroups", r.APIGroups}, {"resources", r.Resources}, {"verbs", r.Verbs}, {"nonResourceURLs", r.NonResourceURLs}} {
			if slices.Contains(fl.v, "*") {
				fields = append(fields, fl.name)
			}
		}
		if len(fields) > 0 {
			f.add(fmt.Sprintf("rules[%d] uses \"*\" in %s", i, strings.Join(fields, ", ")))
		}
	}
	return f.outcome()
}

var readVerbs = [][3]string{{"get", "", "secrets"}, {"list", "", "secrets"}, {"watch", "", "secrets"}}

var escalateVerbs = [][3]string{
	{"escalate", "rbac.authorization.k8s.io", "roles"}, {"escalate", "rbac.authorization.k8s.io", "clusterroles"},
	{"bind", "rbac.authorization.k8s.io", "roles"}, {"bind", "rbac.authorization.k8s.io", "clusterroles"},
	{"impersonate", "", "users"}, {"impersonate", "", "groups"}, {"impersonate", "", "serviceaccounts"},
	{"impersonate", "authentication.k8s.io", "userextras"}, {"impersonate", "authentication.k8s.io", "uids"},
}

var execVerbs = [][3]string{{"create", "", "pods/exec"}, {"create", "", "pods/attach"}, {"get", "", "pods/exec"}}

var createPods = [][3]string{
	{"create", "", "pods"}, {"create", "apps", "deployments"}, {"create", "apps", "daemonsets"},
	{"create", "apps", "statefulsets"}, {"create", "batch", "jobs"}, {"create", "batch", "cronjobs"},
}

var nodesProxy = [][3]string{{"get", "", "nodes/proxy"}, {"create", "", "nodes/proxy"}}

func checkClusterAdminBinding(_ *Config, t *target) outcome {
	b := t.binding
	if b.roleRef.Kind != "ClusterRole" || b.roleRef.Name != "cluster-admin" {
		return pass()
	}
	var subj []string
	for _, s := range b.subjects {
		if strings.HasPrefix(s.Name, "system:") {
			continue // the control plane's own bindings
		}
		subj = append(subj, s.Kind+" "+qualified(s))
	}
	if len(subj) == 0 {
		return pass()
	}
	return fail("binds cluster-admin to "+strings.Join(subj, ", "), nil)
}

func checkSystemMasters(_ *Config, t *target) outcome {
	for _, s := range t.binding.subjects {
		if s.Kind == "Group" && s.Name == "system:masters" {
			return fail("binds "+t.binding.roleRef.Kind+" "+t.binding.roleRef.Name+" to Group system:masters", nil)
		}
	}
	return pass()
}

func checkDefaultSABinding(_ *Config, t *target) outcome {
	var hit []string
	for i, s := range t.binding.subjects {
		if s.Kind == "ServiceAccount" && s.Name == "default" {
			hit = append(hit, fmt.Sprintf("subjects[%d] ServiceAccount %s", i, qualified(s)))
		}
	}
	if len(hit) == 0 {
		return pass()
	}
	return fail("grants "+t.binding.roleRef.Kind+" "+t.binding.roleRef.Name+" to the default service account: "+strings.Join(hit, ", "), nil)
}

func qualified(s rbacv1.Subject) string {
	if s.Namespace != "" {
		return s.Namespace + "/" + s.Name
	}
	return s.Name
}

func checkDefaultSAAutomount(_ *Config, t *target) outcome {
	if ptrFalse(t.sa.AutomountServiceAccountToken) {
		return pass()
	}
	return fail(fmt.Sprintf("ServiceAccount %s/default does not set automountServiceAccountToken: false", t.sa.Namespace),
		[]PatchOp{{Op: "add", Path: "/automountServiceAccountToken", Value: false}})
}

// rbacIndex gathers roles and bindings so that a subject's rights can be
// summed over every binding that names it.
type rbacIndex struct {
	roles    map[string][]rbacv1.PolicyRule // "ns/name" for Roles, "/name" for ClusterRoles
	bindings []boundRole
}

type boundRole struct {
	kind, namespace, name string // the binding
	roleRef               rbacv1.RoleRef
	subjects              []rbacv1.Subject
}

func newRBACIndex() *rbacIndex { return &rbacIndex{roles: map[string][]rbacv1.PolicyRule{}} }

func (x *rbacIndex) add(obj any) {
	switch o := obj.(type) {
	case *rbacv1.Role:
		x.roles[o.Namespace+"/"+o.Name] = o.Rules
	case *rbacv1.ClusterRole:
		x.roles["/"+o.Name] = o.Rules
	case *rbacv1.RoleBinding:
		x.bindings = append(x.bindings, boundRole{"RoleBinding", o.Namespace, o.Name, o.RoleRef, o.Subjects})
	case *rbacv1.ClusterRoleBinding:
		x.bindings = append(x.bindings, boundRole{"ClusterRoleBinding", "", o.Name, o.RoleRef, o.Subjects})
	}
}

// subjectView is one subject and the grants that reach it.
type subjectView struct {
	ref    ObjectRef
	grants []grant
	// missing lists roleRefs not found in the input.
	missing []string
	// unavailable says why roles could not be read at all.
	unavailable string
}

type grant struct {
	via   string // "ClusterRoleBinding x -> ClusterRole y"
	scope string // "cluster-wide" or "namespace ns"
	rules []rbacv1.PolicyRule
}

// subjects returns one view per subject named by a binding, except the
// control plane's own (system: users and groups, system: bindings), in a
// stable order.
func (x *rbacIndex) subjects(unavailable map[string]string) []*subjectView {
	byKey := map[string]*subjectView{}
	var keys []string
	rolesMissing := unavailable["Role"] + unavailable["ClusterRole"]
	for _, b := range x.bindings {
		if strings.HasPrefix(b.name, "system:") {
			continue
		}
		key := ""
		if b.roleRef.Kind == "Role" {
			key = b.namespace + "/" + b.roleRef.Name
		} else {
			key = "/" + b.roleRef.Name
		}
		rules, found := x.roles[key]
		scope := "cluster-wide"
		if b.kind == "RoleBinding" {
			scope = "namespace " + b.namespace
		}
		via := b.kind + " " + qualifiedName(b.namespace, b.name) + " -> " + b.roleRef.Kind + " " + b.roleRef.Name
		for _, s := range b.subjects {
			if strings.HasPrefix(s.Name, "system:") {
				continue
			}
			ns := s.Namespace
			if s.Kind == "ServiceAccount" && ns == "" {
				ns = b.namespace
			}
			k := s.Kind + "/" + ns + "/" + s.Name
			v := byKey[k]
			if v == nil {
				v = &subjectView{ref: ObjectRef{Kind: s.Kind, Namespace: ns, Name: s.Name, Source: "(bindings)"}, unavailable: rolesMissing}
				byKey[k] = v
				keys = append(keys, k)
			}
			if !found {
				v.missing = append(v.missing, via)
				continue
			}
			v.grants = append(v.grants, grant{via: via, scope: scope, rules: rules})
		}
	}
	sort.Strings(keys)
	out := make([]*subjectView, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func qualifiedName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// dangerous are the rights BW-K8S-0043 reports, by name.
var dangerous = []struct {
	what    string
	triples [][3]string
}{
	{"full control (* on *)", [][3]string{{"*", "*", "*"}}},
	{"read secrets", readVerbs},
	{"escalate/bind/impersonate", escalateVerbs},
	{"exec/attach into pods", execVerbs},
	{"create pods or pod controllers", createPods},
	{"nodes/proxy", nodesProxy},
}

func checkSubjectRights(_ *Config, t *target) outcome {
	s := t.subject
	if s.unavailable != "" {
		return skip("roles could not be listed: " + s.unavailable)
	}
	var found []string
	for _, d := range dangerous {
		var where []string
		for _, g := range s.grants {
			if grantsAny(g.rules, d.triples, d.what == "full control (* on *)") {
				where = append(where, g.scope+" via "+g.via)
			}
		}
		if len(where) > 0 {
			found = append(found, d.what+" ("+strings.Join(where, "; ")+")")
		}
	}
	if len(found) == 0 {
		if len(s.grants) == 0 && len(s.missing) > 0 {
			return skip("bound roles not in the input: " + strings.Join(s.missing, ", "))
		}
		return pass()
	}
	return fail(s.ref.Kind+" "+qualifiedName(s.ref.Namespace, s.ref.Name)+" can "+strings.Join(found, "; "), nil)
}

// grantsAny: some rule grants one of the triples. With exact, the triple's
// "*" must literally be "*" in the rule (a wildcard grant), not any value.
func grantsAny(rules []rbacv1.PolicyRule, triples [][3]string, exact bool) bool {
	for _, r := range rules {
		for _, tr := range triples {
			if exact {
				if slices.Contains(r.Verbs, "*") && slices.Contains(r.APIGroups, "*") && slices.Contains(r.Resources, "*") {
					return true
				}
				continue
			}
			if grants(r, tr[0], tr[1], tr[2]) {
				return true
			}
		}
	}
	return false
}
