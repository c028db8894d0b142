package live

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

type ctxT = context.Context
type cst = kubernetes.Interface
type lo = metav1.ListOptions

// kinds is the explicit list of what Collect reads; Namespace last (see
// getNamespaces). Only kinds some control needs: no Secrets, no
// ConfigMaps.
func kinds() []kind {
	return []kind{
		{"Pod", "v1", "pods", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.CoreV1().Pods(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[corev1.Pod](l.Items), l.Continue, nil
		}},
		{"Deployment", "apps/v1", "deployments", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.AppsV1().Deployments(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[appsv1.Deployment](l.Items), l.Continue, nil
		}},
		{"ReplicaSet", "apps/v1", "replicasets", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.AppsV1().ReplicaSets(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[appsv1.ReplicaSet](l.Items), l.Continue, nil
		}},
		{"StatefulSet", "apps/v1", "statefulsets", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.AppsV1().StatefulSets(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[appsv1.StatefulSet](l.Items), l.Continue, nil
		}},
		{"DaemonSet", "apps/v1", "daemonsets", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.AppsV1().DaemonSets(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[appsv1.DaemonSet](l.Items), l.Continue, nil
		}},
		{"Job", "batch/v1", "jobs", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.BatchV1().Jobs(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[batchv1.Job](l.Items), l.Continue, nil
		}},
		{"CronJob", "batch/v1", "cronjobs", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.BatchV1().CronJobs(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[batchv1.CronJob](l.Items), l.Continue, nil
		}},
		{"ReplicationController", "v1", "replicationcontrollers", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.CoreV1().ReplicationControllers(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[corev1.ReplicationController](l.Items), l.Continue, nil
		}},
		{"Service", "v1", "services", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.CoreV1().Services(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[corev1.Service](l.Items), l.Continue, nil
		}},
		{"NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.NetworkingV1().NetworkPolicies(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[networkingv1.NetworkPolicy](l.Items), l.Continue, nil
		}},
		{"ServiceAccount", "v1", "serviceaccounts", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.CoreV1().ServiceAccounts(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[corev1.ServiceAccount](l.Items), l.Continue, nil
		}},
		{"Role", "rbac.authorization.k8s.io/v1", "roles", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.RbacV1().Roles(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[rbacv1.Role](l.Items), l.Continue, nil
		}},
		{"RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", true, func(c ctxT, cs cst, ns string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.RbacV1().RoleBindings(ns).List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[rbacv1.RoleBinding](l.Items), l.Continue, nil
		}},
		{"ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", false, func(c ctxT, cs cst, _ string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.RbacV1().ClusterRoles().List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[rbacv1.ClusterRole](l.Items), l.Continue, nil
		}},
		{"ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", false, func(c ctxT, cs cst, _ string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.RbacV1().ClusterRoleBindings().List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[rbacv1.ClusterRoleBinding](l.Items), l.Continue, nil
		}},
		{"Namespace", "v1", "namespaces", false, func(c ctxT, cs cst, _ string, o lo) ([]runtime.Object, string, error) {
			l, err := cs.CoreV1().Namespaces().List(c, o)
			if err != nil {
				return nil, "", err
			}
			return items[corev1.Namespace](l.Items), l.Continue, nil
		}},
	}
}
