package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/sensor/enrich/critest"
	"github.com/bulwark-security/bulwark/internal/sensor/probe"
)

// TestSensorCRISocket (root, real probe + real containerd): `bulwark sensor
// --cri-socket` with the runtime state and the Kubernetes API turned off
// attributes a containerd pod's alert from the CRI socket alone.
func TestSensorCRISocket(t *testing.T) {
	if err := probe.Supported(); err != nil {
		if os.Getenv("BULWARK_REQUIRE_SENSOR") == "1" {
			t.Fatalf("sensor cannot run: %v", err)
		}
		t.Skipf("sensor cannot run here: %v", err)
	}
	c := critest.Start(t)
	pod := c.RunPod(t, "api-0", "prod", nil)
	id := c.StartContainer(t, pod, critest.ContainerOptions{Name: "api", KubeletLabels: true})
	out := filepath.Join(t.TempDir(), "alerts.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, Env{Version: "test", Args: []string{"sensor", "--no-kube", "--no-runtime-state", "--cri-socket", c.Socket,
			"--no-default-intel", "--no-script-drift", "--output", out, "--state-dir", "", "--log-level", "info"},
			Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
	}()
	var got *alerts.Alert
	for deadline := time.Now().Add(30 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		ectx, ecancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Exec(ectx, id, "/bin/cat", "/etc/shadow")
		ecancel()
		if err != nil {
			t.Fatal(err)
		}
		got = findAlert(out, func(a *alerts.Alert) bool {
			return a.Rule == "Shadow file accessed" && a.ContainerID == id && a.Pod != ""
		})
	}
	stopSensor(t, cancel, done, &stderr)
	if got == nil {
		t.Fatalf("no attributed shadow alert in --output; stderr:\n%s", stderr.String())
	}
	if got.Pod != "api-0" || got.Namespace != "prod" || got.Container != "api" || got.Image != c.Busybox || got.ImageDigest != c.BusyboxDigest {
		t.Errorf("alert: pod=%q ns=%q container=%q image=%q digest=%q", got.Pod, got.Namespace, got.Container, got.Image, got.ImageDigest)
	}
	if !strings.Contains(stderr.String(), "attributing containers through the CRI socket") {
		t.Errorf("the CRI socket in use is not logged:\n%s", stderr.String())
	}
}

// stopSensor cancels a `bulwark sensor` run by Main and checks it stops
// cleanly.
func stopSensor(t *testing.T, cancel context.CancelFunc, done <-chan int, stderr *bytes.Buffer) {
	t.Helper()
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sensor did not stop on cancel")
	}
}

func findAlert(path string, match func(*alerts.Alert) bool) *alerts.Alert {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var a alerts.Alert
		if json.Unmarshal(sc.Bytes(), &a) == nil && match(&a) {
			return &a
		}
	}
	return nil
}

// The CRI flags: --no-cri adds nothing, a --cri-socket not there yet is
// kept (the resolver connects when the runtime creates it).
func TestSensorCRIFlags(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if r, err := newCRIResolver(&sensorFlags{noCRI: true, criSocket: "/run/x.sock"}, log); r != nil || err != nil {
		t.Errorf("--no-cri: %v %v", r, err)
	}
	sock := filepath.Join(t.TempDir(), "later.sock")
	r, err := newCRIResolver(&sensorFlags{criSocket: sock}, log)
	if err != nil || r == nil || r.Socket() != sock {
		t.Fatalf("--cri-socket %s: %v %v", sock, r, err)
	}
	r.Close()
	h := run(t, "sensor", "--help").want(t, ExitOK)
	for _, s := range []string{"--cri-socket", "--no-cri", "/run/containerd/containerd.sock"} {
		if !strings.Contains(h.stdout, s) {
			t.Errorf("sensor --help does not mention %s", s)
		}
	}
}
