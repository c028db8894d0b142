package k8stest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
)

// auditPolicy records every request to pods at Metadata level and nothing
// else, so the assertions below can name what must be there.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources:
  - group: ""
    resources: ["pods"]
- level: None
`

func testPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "registry.example/app@sha256:" + strings.Repeat("a", 64),
		}}},
	}
}

func TestClusterPodsAndRBAC(t *testing.T) {
	c := k8stest.Start(t, k8stest.Options{})
	t.Logf("start-up took %s", c.StartupTime)
	ctx := context.Background()
	c.Namespace(t, "apps")

	created, err := c.Client.CoreV1().Pods("apps").Create(ctx, testPod("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	// Admission ran: the ServiceAccount plugin filled in the default account.
	if created.Spec.ServiceAccountName != "default" {
		t.Errorf("serviceAccountName = %q, want default (ServiceAccount admission)", created.Spec.ServiceAccountName)
	}
	got, err := c.Client.CoreV1().Pods("apps").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	if got.UID != created.UID || got.Status.Phase != corev1.PodPending {
		t.Errorf("pod uid %s phase %q, want uid %s and Pending (no scheduler runs)", got.UID, got.Status.Phase, created.UID)
	}

	// The admin kubeconfig file works with the standard loader.
	kcfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	viaFile := kubernetes.NewForConfigOrDie(kcfg)
	if _, err := viaFile.CoreV1().Pods("apps").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatalf("get pod through the kubeconfig file: %v", err)
	}

	// A user without bindings is authenticated but forbidden by RBAC.
	alice := kubernetes.NewForConfigOrDie(c.UserConfig(t, "alice", "developers"))
	_, err = alice.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list pods as alice: err = %v, want Forbidden", err)
	}
	if !strings.Contains(err.Error(), `"alice"`) {
		t.Errorf("forbidden error %q does not name the user: the client cert CN was not used", err)
	}
	// And allowed once her group is bound to a role (RBAC is live, groups come from O=).
	if _, err = c.Client.RbacV1().Roles("apps").Create(ctx, podReader(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.RbacV1().RoleBindings("apps").Create(ctx, roleBinding("devs-read-pods", "pod-reader", "developers"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		_, err := alice.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{})
		return err
	})
}

func TestAuditLogAndWebhook(t *testing.T) {
	type batch struct {
		Kind  string `json:"kind"`
		Items []struct {
			Verb      string `json:"verb"`
			Stage     string `json:"stage"`
			ObjectRef struct {
				Resource  string `json:"resource"`
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"objectRef"`
			User struct {
				Username string `json:"username"`
			} `json:"user"`
		} `json:"items"`
	}
	got := make(chan batch, 100)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer hook-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		var b batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- b
	}))
	srv.StartTLS()
	defer srv.Close()

	c := k8stest.Start(t, k8stest.Options{
		AuditPolicy: auditPolicy,
		AuditWebhook: &k8stest.AuditWebhook{
			URL:          srv.URL,
			CAPEM:        pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
			Token:        "hook-token",
			BatchMaxWait: 200 * time.Millisecond,
		},
	})
	ctx := context.Background()
	c.Namespace(t, "audited")
	if _, err := c.Client.CoreV1().Pods("audited").Create(ctx, testPod("db"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The webhook receives an EventList with the pod creation.
	deadline := time.After(20 * time.Second)
	found := false
	for !found {
		select {
		case b := <-got:
			if b.Kind != "EventList" {
				t.Fatalf("webhook batch kind %q, want EventList", b.Kind)
			}
			for _, e := range b.Items {
				if e.Verb == "create" && e.ObjectRef.Resource == "pods" && e.ObjectRef.Name == "db" && e.Stage == "ResponseComplete" {
					found = true
					if e.User.Username != "bulwark-test-admin" {
						t.Errorf("audit user %q, want bulwark-test-admin", e.User.Username)
					}
				}
				if e.ObjectRef.Resource != "pods" {
					t.Errorf("audit event for %q reached the webhook; the policy logs pods only", e.ObjectRef.Resource)
				}
			}
		case <-deadline:
			t.Fatal("no audit event for the pod creation reached the webhook in 20s")
		}
	}

	// The log file has the same event as a JSON line.
	waitFor(t, 10*time.Second, func() error {
		f, err := os.Open(c.AuditLogPath)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e struct {
				Kind, Verb string
				ObjectRef  struct{ Resource, Name string }
			}
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return err
			}
			if e.Kind == "Event" && e.Verb == "create" && e.ObjectRef.Resource == "pods" && e.ObjectRef.Name == "db" {
				return nil
			}
		}
		return io.ErrUnexpectedEOF
	})
}

func TestUserConfigIsSignedByClusterCA(t *testing.T) {
	c := k8stest.Start(t, k8stest.Options{})
	cfg := c.UserConfig(t, "bob", "g1", "g2")
	block, _ := pem.Decode(cfg.CertData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("user cert does not verify against the cluster CA: %v", err)
	}
	if cert.Subject.CommonName != "bob" || strings.Join(cert.Subject.Organization, ",") != "g1,g2" {
		t.Errorf("subject %v, want CN=bob O=g1,g2", cert.Subject)
	}
	// The API server sees the same identity.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{mustKeyPair(t, cfg.CertData, cfg.KeyData)}}}
	body := bytes.NewBufferString(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	resp, err := (&http.Client{Transport: tr}).Post(cfg.Host+"/apis/authentication.k8s.io/v1/selfsubjectreviews", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string
				Groups   []string
			} `json:"userInfo"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
		t.Fatal(err)
	}
	if review.Status.UserInfo.Username != "bob" || !contains(review.Status.UserInfo.Groups, "g2") {
		t.Errorf("apiserver sees %+v, want bob in g1,g2", review.Status.UserInfo)
	}
}

func mustKeyPair(t *testing.T, cert, key []byte) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
