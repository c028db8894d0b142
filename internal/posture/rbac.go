package posture

import (
	"fmt"
	"slices"
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
