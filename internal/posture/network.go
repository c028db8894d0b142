package posture

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// exposedPorts are well-known ports of databases, caches, queues and admin
// dashboards that should not face outside the cluster.
var exposedPorts = map[int32]string{
	5432: "PostgreSQL", 3306: "MySQL/MariaDB", 1433: "SQL Server", 1521: "Oracle", 27017: "MongoDB",
	6379: "Redis", 9200: "Elasticsearch", 9300: "Elasticsearch transport", 5984: "CouchDB", 9042: "Cassandra",
	7474: "Neo4j", 8086: "InfluxDB", 2379: "etcd", 11211: "memcached", 5601: "Kibana", 3000: "Grafana",
	9090: "Prometheus", 15672: "RabbitMQ management", 8500: "Consul", 8888: "Jupyter", 9093: "Alertmanager",
	26257: "CockroachDB", 8123: "ClickHouse", 9000: "ClickHouse/MinIO", 5672: "AMQP",
}

// exposedNames are substrings of service, port or selector names that mark a
// database or a dashboard.
var exposedNames = []string{
	"postgres", "mysql", "mariadb", "mongo", "redis", "elasticsearch", "opensearch", "kibana", "grafana",
	"prometheus", "dashboard", "etcd", "cassandra", "couchdb", "memcached", "rabbitmq", "jupyter",
	"phpmyadmin", "adminer", "pgadmin", "clickhouse", "cockroach", "alertmanager", "kafka-ui",
}

func exposedName(s string) string {
	s = strings.ToLower(s)
	for _, n := range exposedNames {
		if strings.Contains(s, n) {
			return n
		}
	}
	return ""
}

func checkServiceExposure(_ *Config, t *target) outcome {
	s := t.svc
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer && s.Spec.Type != corev1.ServiceTypeNodePort {
		return pass()
	}
	var why []string
	if n := exposedName(t.ref.Name); n != "" {
		why = append(why, fmt.Sprintf("name suggests %s", n))
	}
	for _, k := range []string{"app", "app.kubernetes.io/name", "app.kubernetes.io/component"} {
		if n := exposedName(s.Spec.Selector[k]); n != "" {
			why = append(why, fmt.Sprintf("selector %s=%s", k, s.Spec.Selector[k]))
		}
	}
	for i, p := range s.Spec.Ports {
		if what, ok := exposedPorts[p.Port]; ok {
			why = append(why, fmt.Sprintf("ports[%d] %d (%s)", i, p.Port, what))
		} else if p.TargetPort.IntVal != 0 && exposedPorts[p.TargetPort.IntVal] != "" {
			why = append(why, fmt.Sprintf("ports[%d] targetPort %d (%s)", i, p.TargetPort.IntVal, exposedPorts[p.TargetPort.IntVal]))
		} else if n := exposedName(p.Name); n != "" {
			why = append(why, fmt.Sprintf("ports[%d] named %q", i, p.Name))
		}
	}
	if len(why) == 0 {
		return pass()
	}
	return fail(fmt.Sprintf("Service of type %s exposes a database or dashboard: %s", s.Spec.Type, strings.Join(why, "; ")),
		[]PatchOp{{Op: "replace", Path: "/spec/type", Value: "ClusterIP"}})
}

func checkNamespaceNetworkPolicy(_ *Config, t *target) outcome {
	if t.unavailable != "" {
		return skip("NetworkPolicies could not be listed: " + t.unavailable)
	}
	if t.nsHasPolicy {
		return pass()
	}
	return fail(fmt.Sprintf("namespace %q has workloads or services in the input but no NetworkPolicy", t.ref.Name), nil)
}
