//go:build linux

package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/bulwark-security/bulwark/internal/inventory"
	"github.com/google/go-cmp/cmp"
)

func TestWalkDir(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write := func(dir, p, body string) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(root, "etc/os-release", "ID=debian")
	write(root, "usr/lib/os-release", "ID=real")
	write(root, "big", "0123456789")
	write(root, "a.txt", "sorts before a/")
	write(root, "a/b", "b")
	write(outside, "secret", "outside the root")
	write(outside, "dir/secret2", "outside the root too")
	for _, l := range [][2]string{
		{filepath.Join(outside, "secret"), "abs-link"},
		{"../../../../../../" + outside + "/secret", "rel-link"},
		{filepath.Join(outside, "dir"), "dir-link"},
		{"usr/lib/os-release", "inside-link"},
	} {
		if err := os.Symlink(l[0], filepath.Join(root, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "a/b"), filepath.Join(root, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	extract := func(ctx context.Context, in *inventory.Input) (string, error) {
		if in.Path == "big" {
			if _, _, err := in.ReaderAt(); err != nil {
				return "", err
			}
		}
		return readAll(ctx, in)
	}
	entries, errs, err := WalkDir(context.Background(), root, Limits{MaxFileSize: 5}, requireAll, extract)
	if err != nil {
		t.Fatal(err)
	}
	want := []found{
		{"a.txt", 0, "sorts before a/"}, {"a/b", 0, "b"},
		{"etc/os-release", 0, "ID=debian"}, {"hard", 0, "b"}, {"usr/lib/os-release", 0, "ID=real"},
	}
	if diff := cmp.Diff(want, summarize(entries)); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if len(errs) != 1 || errs[0].Path != "big" || !errors.Is(errs[0], inventory.ErrTooLarge) {
		t.Errorf("errors = %v, want big: ErrTooLarge", errs)
	}
	for _, e := range entries {
		if e.Layer != "" {
			t.Errorf("%s: layer %q", e.Path, e.Layer)
		}
	}

	if _, _, err := WalkDir(context.Background(), root, Limits{MaxFiles: 3}, requireAll, readAll); !errors.Is(err, ErrLimit) {
		t.Errorf("MaxFiles 3: err = %v, want ErrLimit", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := WalkDir(ctx, root, Limits{}, requireAll, readAll); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
	if _, _, err := WalkDir(context.Background(), filepath.Join(root, "nope"), Limits{}, requireAll, readAll); err == nil {
		t.Error("missing root: no error")
	}
}

// TestSkipMount checks that a live system's /proc is recognised as a
// mount point to skip and /usr is not.
func TestSkipMount(t *testing.T) {
	r, err := os.OpenRoot("/")
	if err != nil {
		t.Skip(err)
	}
	defer r.Close()
	info, err := r.Stat(".")
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/proc", &st); err != nil || st.Type != 0x9fa0 { // PROC_SUPER_MAGIC
		t.Skip("/proc is not a mounted procfs here")
	}
	if !skipMount(r, "proc", info) {
		t.Error("proc not skipped")
	}
	if skipMount(r, "usr", info) {
		t.Error("usr skipped")
	}
}
