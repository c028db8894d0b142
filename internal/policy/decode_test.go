package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// richPodSpec exercises the field types that have their own JSON methods
// (quantities, int-or-string, times) and the nested shapes posture reads.
func richPodSpec() corev1.PodSpec {
	t, f := true, false
	uid := int64(1000)
	grace := int64(30)
	return corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1.36", Command: []string{"sh", "-c", "true"}}},
		Containers: []corev1.Container{{
			Name: "app", Image: "registry.example.com/shop/web:1.4.2@sha256:5e3f4b2d1c0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80, Protocol: corev1.ProtocolTCP}},
			Env:   []corev1.EnvVar{{Name: "A", Value: "ü\u2028"}, {Name: "B", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.1"), corev1.ResourceMemory: resource.MustParse("1e3")}},
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &f, Privileged: &f, RunAsNonRoot: &t, RunAsUser: &uid,
				ReadOnlyRootFilesystem: &t, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 5},
			VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data", ReadOnly: true}},
		}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/data"}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: resource.NewQuantity(1<<20, resource.BinarySI)}}}},
		HostNetwork: true, HostPID: false, AutomountServiceAccountToken: &f, ServiceAccountName: "web",
		SecurityContext:               &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}}},
		Tolerations:                   []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		TerminationGracePeriodSeconds: &grace,
	}
}

// decodeSeeds are real objects of every kind DecodeObject takes, as the
// API server serializes them.
func decodeSeeds(t testing.TB) map[string][]byte {
	meta := metav1.ObjectMeta{Name: "web", Namespace: "prod", GenerateName: "web-", Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{"a": "b"}, CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 27, 23, 0, 0, 0, time.UTC))}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}}, Spec: richPodSpec()}
	three := int32(3)
	objs := map[string]runtime.Object{
		"Pod":                   &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: meta, Spec: richPodSpec()},
		"Deployment":            &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: meta, Spec: appsv1.DeploymentSpec{Replicas: &three, Template: tmpl, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
		"ReplicaSet":            &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{Template: tmpl}},
		"StatefulSet":           &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{Template: tmpl}},
		"DaemonSet":             &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{Template: tmpl}},
		"Job":                   &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Template: tmpl}},
		"CronJob":               &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}},
		"ReplicationController": &corev1.ReplicationController{ObjectMeta: meta, Spec: corev1.ReplicationControllerSpec{Template: &tmpl}},
	}
	out := map[string][]byte{}
	for k, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// checkDecodeLikeEncodingJSON fails when DecodeObject and encoding/json
// disagree on raw: one refuses what the other takes, or they decode
// different objects.
func checkDecodeLikeEncodingJSON(t *testing.T, kind string, raw []byte) {
	t.Helper()
	got, err := DecodeObject(kind, raw)
	want, _ := DecodeObject(kind, []byte("{}")) // a fresh object of the kind
	wantErr := json.Unmarshal(raw, want)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%s %q: DecodeObject error %v, encoding/json error %v", kind, raw, err, wantErr)
	}
	// The error reads as it did when every object was decoded with the
	// legacy error reporting (before the fast path).
	legacy, _ := newObject(kind)
	if lerr := jsonv2.Unmarshal(raw, legacy, jsonv1.DefaultOptionsV1()); err != nil && err.Error() != fmt.Sprintf("decode %s: %v", kind, lerr) {
		t.Fatalf("%s %q: DecodeObject error %q, legacy error %v", kind, raw, err, lerr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%s %q decodes differently:\n got %s\nwant %s", kind, raw, g, w)
	}
}

// TestDecodeObjectLikeEncodingJSON: DecodeObject (go-json-experiment with
// v1 options) takes and refuses exactly what encoding/json does, and
// decodes the same objects, including the lenient cases of outside
// manifests (unknown fields, names in another case, duplicates, invalid
// UTF-8, nulls).
func TestDecodeObjectLikeEncodingJSON(t *testing.T) {
	for kind, raw := range decodeSeeds(t) {
		variants := [][]byte{raw,
			bytes.Replace(raw, []byte(`"metadata"`), []byte(`"bogus":{"x":[1,2]},"metadata"`), 1),        // unknown field
			bytes.Replace(raw, []byte(`"name":"app"`), []byte(`"NAME":"app"`), 1),                        // case
			bytes.Replace(raw, []byte(`"name":"web"`), []byte(`"name":"a","name":"web"`), 1),             // duplicate
			bytes.Replace(raw, []byte(`"image":"busybox:1.36"`), []byte("\"image\":\"busy\xffbox\""), 1), // invalid UTF-8
			bytes.Replace(raw, []byte(`"labels":{"app":"web"}`), []byte(`"labels":null`), 1),             // null
			bytes.Replace(raw, []byte(`"cpu":"500m"`), []byte(`"cpu":"5 00m"`), 1),                       // bad quantity
			bytes.Replace(raw, []byte(`"containerPort":8080`), []byte(`"containerPort":8080.5`), 1),      // not an integer
			bytes.Replace(raw, []byte(`"port":"http"`), []byte(`"port":true`), 1),                        // bad int-or-string
			bytes.Replace(raw, []byte(`"creationTimestamp":"2026-11-27T23:00:00Z"`), []byte(`"creationTimestamp":"yesterday"`), 1),
			append(raw[:len(raw):len(raw)], []byte(" {}")...), // trailing data
			[]byte(`null`), []byte(`[]`), []byte(`{"spec":"x"}`),
		}
		for _, v := range variants {
			checkDecodeLikeEncodingJSON(t, kind, v)
		}
	}
}

// FuzzDecodeObject is the same comparison over any input: DecodeObject
// must never panic, and must agree with encoding/json.
func FuzzDecodeObject(f *testing.F) {
	for _, raw := range decodeSeeds(f) {
		f.Add(uint8(0), raw)
	}
	f.Add(uint8(1), []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","Image":"b","image":"c"}]}}}}`))
	kinds := Kinds()
	f.Fuzz(func(t *testing.T, k uint8, raw []byte) {
		checkDecodeLikeEncodingJSON(t, kinds[int(k)%len(kinds)], raw)
	})
}
