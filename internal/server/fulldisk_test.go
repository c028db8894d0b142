package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/audit"
	"github.com/bulwark-security/bulwark/internal/fsutil/fulldisk"
	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
	"github.com/bulwark-security/bulwark/internal/store"
)

// TestStorageFull is issue 7's "a full disk: clear errors, bounded memory,
// and nothing accepted is lost", on a real filesystem that runs out of
// space (a small tmpfs: the kernel's ENOSPC, SQLite's SQLITE_FULL,
// PostgreSQL's disk_full — no stand-in error). Central keeps answering;
// a batch it cannot store is refused whole with 507 storage_full and
// Retry-After (senders keep it and retry); every alert it acknowledged is
// there, readable while the disk is full and after a restart; once room is
// made, the refused batch is accepted as new (none of it had been stored).
func TestStorageFull(t *testing.T) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			disk := fulldisk.Mount(t, 32<<20)
			var dsn string
			if b.Name == "sqlite" {
				dsn = filepath.Join(disk.Dir, "bulwark.db")
			} else {
				dsn = postgresOnDisk(t, b, disk)
			}
			testStorageFull(t, dsn, disk)
		})
	}
}

// postgresOnDisk returns a new test database whose tables live in a
// tablespace on disk (the catalogs and the WAL stay where they are, as on
// a server whose data volume fills while its WAL volume does not).
func postgresOnDisk(t *testing.T, b backend, disk *fulldisk.Disk) string {
	if os.Getenv("BULWARK_TEST_POSTGRES") != "" {
		t.Skip("BULWARK_TEST_POSTGRES names an outside server: its tablespaces cannot live on this test's tmpfs")
	}
	disk.Chown("postgres")
	ts := "bulwark_full_" + strings.TrimPrefix(filepath.Base(disk.Dir), "bulwark-fulldisk-")
	ts = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, strings.ToLower(ts))
	var admin *sql.DB
	// Dropped after the database (cleanups run last first).
	t.Cleanup(func() {
		if admin != nil {
			_, _ = admin.Exec(`DROP TABLESPACE IF EXISTS ` + ts)
			admin.Close()
		}
	})
	dsn := b.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.Database
	cfg.Database = "postgres"
	admin = stdlib.OpenDB(*cfg)
	for _, q := range []string{
		`CREATE TABLESPACE ` + ts + ` LOCATION '` + disk.Dir + `'`,
		`ALTER DATABASE ` + db + ` SET default_tablespace = ` + ts,
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return dsn
}

func testStorageFull(t *testing.T, dsn string, disk *fulldisk.Disk) {
	e := startEnv(t, dsn, Config{Workers: -1})
	agent := e.token(store.RoleAgent)
	// Leave a little room: the first batches fit, a later one does not.
	disk.Fill(1 << 20)
	evidence := `{"proc.cmdline":"` + strings.Repeat("x", 1500) + `"}`
	now := time.Now().UTC().Truncate(time.Second)
	batch := func(n int) []alerts.Alert {
		out := make([]alerts.Alert, 100)
		for i := range out {
			a := testAlert(t, fmt.Sprintf("full-%d-%d", n, i), i, "shop", fmt.Sprintf("Deployment/web-%d", i%5), now)
			a.Fingerprint = a.ID // every alert a row of its own: the disk fills
			a.Evidence = json.RawMessage(evidence)
			out[i] = a
		}
		return out
	}
	post := func(b []alerts.Alert) (*http.Response, []byte) {
		t.Helper()
		body, _ := json.Marshal(alerts.Batch{Alerts: b})
		req, _ := http.NewRequest("POST", e.url+"/api/v1/alerts", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+agent)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatalf("post alerts: %v", err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(resp.Body)
		return resp, raw.Bytes()
	}

	accepted := 0
	var refused []alerts.Alert
	for n := 0; n < 200 && refused == nil; n++ {
		b := batch(n)
		resp, raw := post(b)
		switch resp.StatusCode {
		case http.StatusOK:
			var r ingestResponse
			if err := json.Unmarshal(raw, &r); err != nil || r.Accepted != len(b) {
				t.Fatalf("batch %d: %s (%v)", n, raw, err)
			}
			accepted += r.Accepted
		case http.StatusInsufficientStorage:
			if code := errorCode(raw); code != "storage_full" || !strings.Contains(string(raw), "retry later") {
				t.Fatalf("batch %d: 507 with %s, want code storage_full and a message saying what to do", n, raw)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("507 without Retry-After")
			}
			refused = b
		default:
			t.Fatalf("batch %d: %d %s, want 200 or 507 storage_full", n, resp.StatusCode, raw)
		}
	}
	if refused == nil {
		t.Fatalf("the disk never filled: %d alerts accepted, %d bytes free", accepted, disk.Free())
	}
	if accepted == 0 {
		t.Fatalf("the first batch was already refused: the filler left too little room")
	}
	t.Logf("%d alerts accepted before the disk filled (%d bytes free)", accepted, disk.Free())
	if !strings.Contains(e.logs.String(), "storage full") {
		t.Errorf("the server log does not say the storage is full:\n%s", tail(e.logs.String(), 2000))
	}

	total := func() int {
		t.Helper()
		var list listResponse[alertJSON]
		e.get("/api/v1/alerts?limit=1", &list)
		return list.Total
	}
	// Reads keep working on a full disk, and show exactly what was acknowledged.
	if got := total(); got != accepted {
		t.Fatalf("%d alerts stored, %d acknowledged", got, accepted)
	}
	// Still full: refused again, and the server is still up.
	if resp, raw := post(refused); resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("second try on a full disk: %d %s", resp.StatusCode, raw)
	}

	// Room again: the refused batch is taken as new — none of it was kept.
	disk.Unfill()
	resp, raw := post(refused)
	var r ingestResponse
	if err := json.Unmarshal(raw, &r); resp.StatusCode != http.StatusOK || err != nil || r.Accepted != len(refused) || r.Duplicates != 0 {
		t.Fatalf("after making room: %d %s, want all %d accepted as new", resp.StatusCode, raw, len(refused))
	}
	accepted += len(refused)

	// A restart finds everything that was acknowledged.
	if err := e.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := e.st.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	st, err := store.Open(context.Background(), dsn, store.Options{SecretKey: testKey})
	if err != nil {
		t.Fatalf("reopen store: %v", err)
	}
	defer st.Close()
	_, n, err := st.ListAlerts(context.Background(), store.AlertFilter{}, store.Page{Limit: 1})
	if err != nil || n != accepted {
		t.Fatalf("after restart: %d alerts (%v), want %d", n, err, accepted)
	}
}

// TestAuditFullDiskRealAPIServer: the real kube-apiserver's audit webhook
// posts to central while central's disk is full. The receiver answers 503
// with Retry-After (the alerts could not be stored), the API server keeps
// the batch and retries, and once room is made the alert lands — once.
func TestAuditFullDiskRealAPIServer(t *testing.T) {
	disk := fulldisk.Mount(t, 32<<20)
	token := "apiserver-token-0123456789abcdef"
	e := startEnv(t, filepath.Join(disk.Dir, "bulwark.db"), Config{Workers: -1, SweepInterval: -1, DBWatchInterval: -1,
		Audit: AuditConfig{Listen: "127.0.0.1:0", Clients: []audit.Client{{Cluster: "real", Token: token}}}})
	caPEM, err := os.ReadFile(e.caPath)
	if err != nil {
		t.Fatal(err)
	}
	c := k8stest.Start(t, k8stest.Options{AuditPolicy: audit.RecommendedPolicy,
		AuditWebhook: &k8stest.AuditWebhook{URL: "https://" + e.srv.AuditAddr().String() + "/api/v1/audit/webhook",
			CAPEM: caPEM, Token: token, BatchMaxWait: time.Second},
		// Upstream's 10 s first backoff would make the test slow, not different.
		ExtraArgs: []string{"--audit-webhook-initial-backoff=1s"}})
	c.Namespace(t, "full-audit")
	disk.Fill(0)
	priv := true
	if _, err := c.Client.CoreV1().Pods("full-audit").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
			SecurityContext: &corev1.SecurityContext{Privileged: &priv}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "central to refuse an audit batch for want of space", func() bool {
		return strings.Contains(e.logs.String(), "audit batch not stored") && strings.Contains(e.logs.String(), "storage full")
	})
	stored := func() []store.Alert {
		got, _, err := e.st.ListAlerts(context.Background(), store.AlertFilter{Rule: "Privileged container created"}, store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := stored(); len(got) != 0 {
		t.Fatalf("an alert was stored on a full disk: %+v", got)
	}
	disk.Unfill()
	waitFor(t, 60*time.Second, "the privileged-pod alert after room was made", func() bool { return len(stored()) > 0 })
	time.Sleep(2 * time.Second) // a retry in flight must not store it twice
	got := stored()
	if len(got) != 1 || got[0].Count != 1 || got[0].Namespace != "full-audit" || got[0].Pod != "root" {
		t.Fatalf("alerts after the retry: %+v", got)
	}
}
