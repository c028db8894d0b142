package export

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/store"
)

func IsPermanentForTest(err error) bool { return errors.Is(err, ErrPermanent) }

const killChildEnv = "BULWARK_EXPORT_KILL_CHILD"

// killChildMain is the child process: central's delivery workers on the
// given store, running until killed.
func killChildMain(dsn string) int {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{SecretKey: testKey})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d := NewDispatcher(st, DispatcherOptions{Poll: 20 * time.Millisecond, Refresh: 100 * time.Millisecond, LeaseFor: time.Second,
		Deps: Deps{Logger: log}})
	fmt.Println("READY")
	_ = d.Run(ctx)
	return 0
}

func startKillChild(t *testing.T, dsn string, logs *strings.Builder) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dsn)
	cmd.Stderr = &lockedWriter{b: logs}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "READY\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not start (%q, %v): %s", line, err, logs.String())
	}
	return cmd
}

// TestKill9MidDelivery: central's delivery workers are killed with
// SIGKILL while they deliver a backlog to a slow webhook receiver, and
// restarted. Every queued record is delivered after the restart; a batch
// cut off by the kill is redelivered under the same Idempotency-Key, so
// the receiver stores each record exactly once.
func TestKill9MidDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			st := openStore(t, dsn)
			wr, srv := newWebhookReceiver(t, "kill-key")
			wr.hang = 15 * time.Millisecond // slow enough to be caught mid-batch
			e := createExport(t, st, Config{Name: "hook", Type: TypeWebhook, URL: srv.URL, BatchSize: 10,
				Timeout: Duration(time.Second), Secrets: Secrets{HMACKey: "kill-key"}})
			const n = 80
			recs := records(n, 1000)
			enqueue(t, st, recs...)
			logs := &strings.Builder{}
			defer func() {
				if t.Failed() {
					t.Logf("child log:\n%s", logs.String())
				}
			}()
			child := startKillChild(t, dsn, logs)
			waitFor(t, 30*time.Second, "some deliveries", func() bool { return len(wr.accepted()) >= 15 })
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die of SIGKILL: %v", child.ProcessState)
			}
			atKill := len(wr.accepted())
			if atKill == n {
				t.Fatalf("everything was delivered before the kill")
			}
			child = startKillChild(t, dsn, logs)
			defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
			waitFor(t, 60*time.Second, "every record after the restart", func() bool {
				s, err := st.ExportOutboxStats(context.Background(), e.ID)
				return err == nil && s.Pending == 0 && len(wr.accepted()) == n
			})
			wr.mu.Lock()
			defer wr.mu.Unlock()
			redelivered := 0
			for _, r := range recs {
				switch c := wr.seen[r.ID]; {
				case c == 0:
					t.Errorf("%s never delivered", r.ID)
				case c > 1:
					redelivered++
				}
			}
			// The receiver stored each record once (it keeps one entry per
			// Idempotency-Key); redeliveries are what the key is for.
			if len(wr.ids) != n {
				t.Errorf("receiver stored %d records, want %d", len(wr.ids), n)
			}
			t.Logf("killed after %d of %d deliveries; %d records redelivered under their idempotency key", atKill, n, redelivered)
		})
	}
}

// lockedWriter lets the child's stderr be read while it is written.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
