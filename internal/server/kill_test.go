package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bulwark-security/bulwark/internal/store"
	"github.com/bulwark-security/bulwark/internal/testlog"
)

// pushDemoVariants pushes n images to host/repo (tags v0…): the bundled
// demo image with a distinct label each, so each has its own manifest
// digest while the layers are shared. It returns the digests.
func pushDemoVariants(t testing.TB, host, repo string, n int) []string {
	t.Helper()
	base, err := tarball.ImageFromPath(demoImagePath(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range n {
		c := cf.Config.DeepCopy()
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels["test.variant"] = fmt.Sprint(i)
		img, err := mutate.Config(base, *c)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewTag(fmt.Sprintf("%s/%s:v%d", host, repo, i), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// distributionPush is a CNCF Distribution notification of one manifest
// push, shaped as distribution v3 sends it.
func distributionPush(id, repo, tag, digest string) map[string]any {
	return map[string]any{"events": []any{map[string]any{
		"id": id, "timestamp": time.Now().UTC().Format(time.RFC3339Nano), "action": "push",
		"target": map[string]any{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": digest,
			"size": 1234, "length": 1234, "repository": repo, "tag": tag,
			"url": "http://127.0.0.1/v2/" + repo + "/manifests/" + digest},
		"request": map[string]any{"id": "req-" + id, "addr": "127.0.0.1:5555", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "test"},
		"actor":   map[string]any{}, "source": map[string]any{"addr": "test:5000", "instanceID": "i"},
	}}}
}

// createRegistry stores a distribution registry with a webhook secret.
func createRegistry(t testing.TB, st *store.Store, name, url, kind, secret string) *store.Registry {
	t.Helper()
	r, err := st.CreateRegistry(context.Background(), store.Registry{Name: name, URL: url, Kind: store.RegistryKind(kind),
		Insecure: strings.HasPrefix(url, "http://"), Credentials: &store.Credentials{WebhookSecret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const killChildEnv = "BULWARK_SERVER_KILL_CHILD"

// killChildMain is the child process: a server with two workers on the
// given store, printing its URL, running until killed.
func killChildMain() int {
	dsn, data, dbDir := os.Getenv(killChildEnv), os.Getenv(killChildEnv+"_DATA"), os.Getenv(killChildEnv+"_DBDIR")
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, store.Options{SecretKey: testKey})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := New(Config{Listen: "127.0.0.1:0", InsecureHTTP: true, DataDir: data, DBDir: dbDir, Workers: 2,
		LeaseDuration: 2 * time.Second, PollInterval: 50 * time.Millisecond, SweepInterval: -1, DBWatchInterval: -1},
		Deps{Store: st, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Printf("URL %s\n", srv.URL())
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	return 0
}

// startChild runs the child server and returns it with its URL.
func startChild(t *testing.T, dsn, data, dbDir string, logs *testlog.Buffer) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dsn, killChildEnv+"_DATA="+data, killChildEnv+"_DBDIR="+dbDir)
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "URL ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not start (%q, %v): %s", line, err, logs.String())
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "URL "))
}

// TestKill9DuringScanWave: notifications for a wave of images are
// accepted, the server is killed with SIGKILL while it scans them, and
// restarted. Every accepted job ends done and every image is scanned
// exactly once (SaveScan completes the job in its own transaction, fenced
// by the lease: a scan cut short is redone, a finished one never is).
func TestKill9DuringScanWave(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	const wave = 12
	digests := pushDemoVariants(t, host, "wave/app", wave)
	dbDir := importDB(t, advisoryFiles(t))
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			st, err := store.Open(ctx, dsn, store.Options{SecretKey: testKey})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			const secret = "wave-webhook-secret-0123456789"
			createRegistry(t, st, "wave", reg.URL, "distribution", secret)
			data := t.TempDir()
			logs := &testlog.Buffer{}
			defer func() {
				if t.Failed() {
					t.Logf("child log:\n%s", tail(logs.String(), 8000))
				}
			}()
			child, url := startChild(t, dsn, data, dbDir, logs)
			e := &env{t: t, client: httptestClient(), url: url}
			accepted := map[string]int64{}
			for i, d := range digests {
				st, b := e.do("POST", "/api/v1/hooks/distribution", "", distributionPush(fmt.Sprintf("ev-%d", i), "wave/app", fmt.Sprintf("v%d", i), d),
					"Authorization", "Bearer "+secret)
				if st != 202 {
					child.Process.Kill()
					child.Wait()
					t.Fatalf("notification %d: %d %s", i, st, b)
				}
				var hr hookResponse
				_ = jsonUnmarshal(b, &hr)
				accepted[d] = hr.Jobs[0]
			}
			// Kill once some scans are done and one is running.
			var doneAtKill, runningAtKill int
			deadline := time.Now().Add(90 * time.Second)
			for {
				qs, err := st.QueueStats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if qs.Done >= 2 && qs.Running >= 1 {
					doneAtKill, runningAtKill = qs.Done, qs.Running
					break
				}
				if qs.Done == wave || time.Now().After(deadline) {
					child.Process.Kill()
					child.Wait()
					t.Fatalf("could not catch the wave in flight: %+v", qs)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = child.Wait()
			if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die of SIGKILL: %v", child.ProcessState)
			}
			t.Logf("killed with %d done and %d running of %d", doneAtKill, runningAtKill, wave)

			child, _ = startChild(t, dsn, data, dbDir, logs)
			defer func() { child.Process.Kill(); child.Wait() }()
			waitFor(t, 2*time.Minute, "every job done after the restart", func() bool {
				qs, err := st.QueueStats(ctx)
				return err == nil && qs.Done == wave && qs.Pending == 0 && qs.Running == 0
			})
			retried := 0
			for d, id := range accepted {
				j, err := st.GetJob(ctx, id)
				if err != nil || j.State != store.JobDone {
					t.Errorf("job %d of %s: %+v, %v", id, d, j, err)
					continue
				}
				if j.Attempts > 1 {
					retried++
				}
				scans, n, err := st.ListScans(ctx, store.ScanFilter{ImageDigest: d, Status: store.ScanSucceeded}, store.Page{})
				if err != nil || n != 1 {
					t.Errorf("%s scanned %d times (%v): %+v", d, n, err, scans)
				}
				if _, err := st.GetSBOM(ctx, d); err != nil {
					t.Errorf("%s: %v", d, err)
				}
			}
			if retried < 1 {
				t.Errorf("no job was taken over after the kill (running at kill: %d)", runningAtKill)
			}
			_, total, err := st.ListJobs(ctx, store.JobFilter{Kind: jobScan}, store.Page{})
			if err != nil || total != wave {
				t.Errorf("%d scan jobs (%v), want %d", total, err, wave)
			}
		})
	}
}
