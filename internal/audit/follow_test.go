package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type followRun struct {
	f      *Follower
	proc   *Processor
	cancel context.CancelFunc
	done   chan error
}

// startFollower runs a follower with a fresh processor (so its replay
// memory cannot hide a line read twice).
func startFollower(t *testing.T, cfg FollowerConfig, sink *memSink) *followRun {
	t.Helper()
	proc, err := NewProcessor(Config{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	if cfg.RotateGrace == 0 {
		cfg.RotateGrace = 50 * time.Millisecond
	}
	cfg.Cluster = "managed"
	if os.Getenv("FOLLOW_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f, err := NewFollower(cfg, proc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &followRun{f: f, proc: proc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- f.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *followRun) stop(t *testing.T) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		t.Errorf("follower: %v", err)
	}
}

func appendLines(t testing.TB, path string, lines ...string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	for _, l := range lines {
		if _, err := io.WriteString(fh, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func pods(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = privilegedPod(fmt.Sprintf("%s-%d", prefix, i), "default", fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// A restarted follower resumes at its saved offset: every line once.
func TestFollowerRestartResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json")}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("a", 20)...)
	r := startFollower(t, cfg, sink)
	waitFor(t, 10*time.Second, "20 alerts", func() bool { return len(sink.all()) == 20 })
	r.stop(t)
	appendLines(t, cfg.Path, pods("b", 7)...)
	r2 := startFollower(t, cfg, sink)
	waitFor(t, 10*time.Second, "27 alerts", func() bool { return len(sink.all()) == 27 })
	time.Sleep(50 * time.Millisecond)
	if ev := r2.proc.Stats().Events; ev != 7 {
		t.Errorf("restarted follower evaluated %d lines, want the 7 new ones", ev)
	}
	if sink.dups != 0 {
		t.Errorf("%d duplicate alerts", sink.dups)
	}
}

// Rename-and-create rotation while a writer keeps appending: no line lost,
// none read twice.
func TestFollowerRenameRotationRace(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json")}
	sink := newMemSink()
	r := startFollower(t, cfg, sink)
	const total, every = 1200, 150
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fh, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Error(err)
			return
		}
		for i := range total {
			if i > 0 && i%every == 0 {
				// lumberjack: rename, create, continue in the new file.
				// Rotations are further apart than poll + grace (a
				// follower that falls several rotations behind skips the
				// files in between: see Follower).
				time.Sleep(120 * time.Millisecond)
				fh.Close()
				if err := os.Rename(cfg.Path, filepath.Join(dir, fmt.Sprintf("audit-%04d.log", i))); err != nil {
					t.Error(err)
					return
				}
				if fh, err = os.OpenFile(cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
					t.Error(err)
					return
				}
			}
			io.WriteString(fh, privilegedPod(fmt.Sprintf("r-%d", i), "default", "p")+"\n")
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		fh.Close()
	}()
	wg.Wait()
	waitFor(t, 20*time.Second, fmt.Sprintf("%d alerts", total), func() bool { return len(sink.all()) >= total })
	time.Sleep(100 * time.Millisecond)
	if n, ev := len(sink.all()), r.proc.Stats().Events; n != total || ev != total {
		t.Errorf("%d alerts from %d evaluated lines, want %d each", n, ev, total)
	}
}

// A writer told to reopen by a signal keeps appending to the renamed file
// for a moment; those lines are read too.
func TestFollowerLateWritesToRotatedFile(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json"), RotateGrace: 300 * time.Millisecond}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("early", 3)...)
	startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "3 alerts", func() bool { return len(sink.all()) == 3 })
	old := filepath.Join(dir, "audit.log.1")
	if err := os.Rename(cfg.Path, old); err != nil {
		t.Fatal(err)
	}
	appendLines(t, cfg.Path, pods("new", 2)...)
	time.Sleep(50 * time.Millisecond)
	appendLines(t, old, pods("late", 2)...)
	waitFor(t, 5*time.Second, "7 alerts", func() bool { return len(sink.all()) == 7 })
}

// copytruncate keeps the inode: a shorter file, or one refilled past the
// old offset before the follower looked, is read from the start.
func TestFollowerCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json"), Poll: 200 * time.Millisecond}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("c", 10)...)
	startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "10 alerts", func() bool { return len(sink.all()) == 10 })
	copytruncate := func() {
		b, _ := os.ReadFile(cfg.Path)
		os.WriteFile(cfg.Path+".1", b, 0o600)
		if err := os.Truncate(cfg.Path, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Shorter than before.
	copytruncate()
	appendLines(t, cfg.Path, pods("d", 2)...)
	waitFor(t, 5*time.Second, "12 alerts", func() bool { return len(sink.all()) == 12 })
	// Refilled beyond the old offset within one poll.
	copytruncate()
	appendLines(t, cfg.Path, pods("longer-name-e", 12)...)
	waitFor(t, 5*time.Second, "24 alerts", func() bool { return len(sink.all()) == 24 })
	if sink.dups != 0 {
		t.Errorf("%d lines read twice", sink.dups)
	}
}

// A file rotated away while Bulwark was down is found by its inode and
// finished before the new file.
func TestFollowerRotatedWhileDown(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json")}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("x", 4)...)
	r := startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "4 alerts", func() bool { return len(sink.all()) == 4 })
	r.stop(t)
	appendLines(t, cfg.Path, pods("y", 3)...) // written, then rotated, while down
	if err := os.Rename(cfg.Path, filepath.Join(dir, "audit-2026-11-27T10-00-00.000.log")); err != nil {
		t.Fatal(err)
	}
	appendLines(t, cfg.Path, pods("z", 2)...)
	r2 := startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "9 alerts", func() bool { return len(sink.all()) == 9 })
	time.Sleep(50 * time.Millisecond)
	if ev := r2.proc.Stats().Events; ev != 5 {
		t.Errorf("evaluated %d lines after restart, want 5", ev)
	}
}

// Rotated twice while Bulwark was down: the file read last is finished,
// then the one rotated after it, then the new file — nothing in between
// is skipped; a compressed one is reported, not read.
func TestFollowerRotatedTwiceWhileDown(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "audit-state.json")}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("x", 4)...)
	r := startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "4 alerts", func() bool { return len(sink.all()) == 4 })
	r.stop(t)
	rotate := func(to string) {
		t.Helper()
		time.Sleep(20 * time.Millisecond) // distinct modification times
		if err := os.Rename(cfg.Path, filepath.Join(dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	// An older rotated file (read before) must not be read again.
	if err := os.WriteFile(filepath.Join(dir, "audit.log.9"), []byte(strings.Join(pods("old", 2), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "audit.log.9"), old, old); err != nil {
		t.Fatal(err)
	}
	appendLines(t, cfg.Path, pods("y", 3)...)
	rotate("audit.log.2")
	appendLines(t, cfg.Path, pods("w", 5)...)
	rotate("audit.log.1")
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "audit.log.0.gz"), []byte("\x1f\x8b not read"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendLines(t, cfg.Path, pods("z", 2)...)
	r2 := startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "14 alerts", func() bool { return len(sink.all()) == 14 })
	time.Sleep(100 * time.Millisecond)
	if ev := r2.proc.Stats().Events; ev != 10 {
		t.Errorf("evaluated %d lines after restart, want 10 (3 + 5 + 2)", ev)
	}
	if n := len(sink.all()); n != 14 {
		t.Errorf("%d alerts, want 14", n)
	}
	// And the state now follows the new file: a restart reads nothing again.
	r2.stop(t)
	r3 := startFollower(t, cfg, sink)
	time.Sleep(150 * time.Millisecond)
	if ev := r3.proc.Stats().Events; ev != 0 {
		t.Errorf("evaluated %d lines after a second restart, want 0", ev)
	}
}

// Rotated twice while the follower still reads the first rotated file (a
// writer faster than the grace period): the file in between is read too.
func TestFollowerRotatedTwiceWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json"), RotateGrace: 400 * time.Millisecond}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("a", 3)...)
	r := startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "3 alerts", func() bool { return len(sink.all()) == 3 })
	if err := os.Rename(cfg.Path, filepath.Join(dir, "audit.log.2")); err != nil {
		t.Fatal(err)
	}
	appendLines(t, cfg.Path, pods("b", 4)...)
	time.Sleep(20 * time.Millisecond)
	if err := os.Rename(cfg.Path, filepath.Join(dir, "audit.log.1")); err != nil { // within the grace period
		t.Fatal(err)
	}
	appendLines(t, cfg.Path, pods("c", 2)...)
	waitFor(t, 5*time.Second, "9 alerts", func() bool { return len(sink.all()) == 9 })
	time.Sleep(100 * time.Millisecond)
	if ev := r.proc.Stats().Events; ev != 9 {
		t.Errorf("evaluated %d lines, want 9", ev)
	}
}

// Partial lines wait for their end; malformed and oversized lines are
// skipped and counted without blocking the lines after them.
func TestFollowerBadLines(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json")}
	sink := newMemSink()
	line := privilegedPod("half", "default", "p")
	fh, _ := os.Create(cfg.Path)
	io.WriteString(fh, line[:100])
	fh.Close()
	r := startFollower(t, cfg, sink)
	time.Sleep(100 * time.Millisecond)
	if r.proc.Stats().Events+r.proc.Stats().Malformed != 0 {
		t.Fatalf("a partial line was processed")
	}
	fh, _ = os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND, 0)
	io.WriteString(fh, line[100:]+"\n")
	io.WriteString(fh, "not json at all\n{\"verb\":5}\n\n")
	io.WriteString(fh, `{"verb":"`+strings.Repeat("x", 1<<20+10)+"\"}\n")
	fh.Close()
	appendLines(t, cfg.Path, pods("after", 1)...)
	waitFor(t, 5*time.Second, "2 alerts", func() bool { return len(sink.all()) == 2 })
	st := r.f.Stats()
	if st.Oversized != 1 || st.Malformed != 1 || r.proc.Stats().Malformed != 1 {
		t.Errorf("follower %+v processor %+v: want 1 oversized, 1 non-JSON, 1 undecodable", st, r.proc.Stats())
	}
}

func TestFollowerCorruptState(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json")}
	os.WriteFile(cfg.StatePath, []byte("{garbage"), 0o600)
	proc, _ := NewProcessor(Config{}, newMemSink())
	f, _ := NewFollower(cfg, proc)
	if err := f.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt state: %v", err)
	}
}

// FuzzAuditLine: any bytes in a log file are read without panic, and a
// valid line after them is still processed exactly once.
func FuzzAuditLine(f *testing.F) {
	f.Add(privilegedPod("f", "default", "p"))
	f.Add("{\"verb\":\"create\"")
	f.Add("\n\n{}\n{")
	f.Add(`{"requestObject":{"spec":{"containers":[null,{"securityContext":null}]}}}`)
	dir := f.TempDir()
	valid := privilegedPod("the-valid-one", "default", "p")
	f.Fuzz(func(t *testing.T, junk string) {
		path := filepath.Join(dir, "audit.log")
		if err := os.WriteFile(path, []byte(junk+"\n"+valid+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "state.json"))
		sink := newMemSink()
		proc, _ := NewProcessor(Config{}, sink)
		fl, _ := NewFollower(FollowerConfig{Path: path, StatePath: filepath.Join(dir, "state.json")}, proc)
		cur := fl.open(0, false)
		if cur == nil {
			t.Fatal("open")
		}
		defer cur.close()
		if err := fl.drain(context.Background(), cur, true); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range sink.all() {
			if a.Rule == "Privileged container created" && strings.Contains(string(a.Evidence), "the-valid-one") {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("valid line after junk: %d alerts", n)
		}
	})
}

// Two followers (or account stores) on one state file: the second is
// refused with the reason instead of both rewriting it; once the first
// ends, the file is free.
func TestStateFileLock(t *testing.T) {
	dir := t.TempDir()
	cfg := FollowerConfig{Path: filepath.Join(dir, "audit.log"), StatePath: filepath.Join(dir, "state.json")}
	sink := newMemSink()
	appendLines(t, cfg.Path, pods("x", 2)...)
	r := startFollower(t, cfg, sink)
	waitFor(t, 5*time.Second, "2 alerts", func() bool { return len(sink.all()) == 2 })
	proc, err := NewProcessor(Config{}, sink)
	if err != nil {
		t.Fatal(err)
	}
	second, err := NewFollower(cfg, proc)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second follower on the same state: %v", err)
	}
	r.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := second.Run(ctx); err != nil {
		t.Errorf("after the first stopped: %v", err)
	}

	acct := NewFileAccountStore(filepath.Join(dir, "sub", "accounts.json"), nil)
	release, err := acct.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileAccountStore(filepath.Join(dir, "sub", "accounts.json"), nil).Lock(); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second account store: %v", err)
	}
	release()
	if release, err := acct.Lock(); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		release()
	}
}
