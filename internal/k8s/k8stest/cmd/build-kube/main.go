// Command build-kube builds the kube-apiserver and etcd that k8stest runs,
// from tools/kube (a separate Go module pinned to k8stest.KubeVersion), into
// k8stest.BinDir — only when they are not there yet. CI runs it before the
// tests (scripts/test.sh); a cold build takes many minutes on two cores, a
// warm one (Go build cache kept) only the link, a present one nothing.
//
//	go run ./internal/k8s/k8stest/cmd/build-kube          # build if absent
//	go run ./internal/k8s/k8stest/cmd/build-kube -force   # rebuild
//
// The build flags are fixed (CGO_ENABLED=0, -trimpath, -ldflags="-s -w" plus
// the version stamp,
// -mod=readonly) so repeated builds hit the Go build cache, and -mod=readonly
// makes a tools/kube/go.sum that does not match go.mod an error instead of a
// silent network resolution.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/sys/unix"

	"github.com/bulwark-security/bulwark/internal/k8s/k8stest"
)

func main() {
	force := flag.Bool("force", false, "rebuild even when the binaries are present")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *force); err != nil {
		fmt.Fprintln(os.Stderr, "build-kube:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, force bool) error {
	root, err := k8stest.RepoRoot()
	if err != nil {
		return err
	}
	src := filepath.Join(root, "tools", "kube")
	if err := checkPin(filepath.Join(src, "go.mod")); err != nil {
		return err
	}
	dir, err := k8stest.BinDir(root)
	if err != nil {
		return err
	}
	if !force && present(dir) {
		fmt.Printf("build-kube: kube-apiserver and etcd %s present in %s\n", k8stest.KubeVersion, dir)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	unlock, err := lock(ctx, dir+".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if !force && present(dir) { // built by another process while we waited
		fmt.Printf("build-kube: kube-apiserver and etcd %s present in %s\n", k8stest.KubeVersion, dir)
		return nil
	}

	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("build-kube: building kube-apiserver and etcd %s from %s into %s (cold: many minutes)\n", k8stest.KubeVersion, src, dir)
	start := time.Now()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags="+ldflags(), "-o", tmp+string(filepath.Separator),
		"./cmd/"+k8stest.APIServerBinary, "./cmd/"+k8stest.EtcdBinary)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build in %s: %w", src, err)
	}
	if force {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("install %s: %w", dir, err)
	}
	fmt.Printf("build-kube: built in %s\n", time.Since(start).Round(time.Second))
	removeStale(dir)
	return nil
}

// removeStale deletes binaries built from other tools/kube sources (about
// 140 MB each), so bumping the pin does not fill the cache.
func removeStale(keep string) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(keep), "kube-v*"))
	for _, p := range old {
		if p == keep || p == keep+".lock" || strings.Contains(filepath.Base(p), ".tmp-") {
			continue
		}
		if err := os.RemoveAll(p); err == nil {
			fmt.Printf("build-kube: removed stale %s\n", p)
		}
	}
}

// ldflags strips symbols and stamps the version upstream's release build
// stamps, so /version (and posture checks that read it) report v1.37.2
// instead of v0.0.0-master. etcd ignores the -X flags (no such symbols).
func ldflags() string {
	v := strings.TrimPrefix(k8stest.KubeVersion, "v")
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")
	const pkg = "k8s.io/component-base/version"
	return "-s -w" +
		" -X " + pkg + ".gitVersion=" + k8stest.KubeVersion +
		" -X " + pkg + ".gitMajor=" + major +
		" -X " + pkg + ".gitMinor=" + minor +
		" -X " + pkg + ".gitTreeState=clean"
}

func present(dir string) bool {
	for _, b := range []string{k8stest.APIServerBinary, k8stest.EtcdBinary} {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// checkPin makes sure tools/kube builds the version k8stest announces, so
// a bump of one without the other fails loudly here.
func checkPin(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == "k8s.io/kubernetes" {
			if r.Mod.Version != k8stest.KubeVersion {
				return fmt.Errorf("%s requires k8s.io/kubernetes %s, k8stest.KubeVersion is %s", path, r.Mod.Version, k8stest.KubeVersion)
			}
			return nil
		}
	}
	return errors.New(path + " does not require k8s.io/kubernetes")
}

// lock takes an exclusive flock so two concurrent runs do not build twice.
func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	waited := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		if !waited {
			fmt.Println("build-kube: waiting for another build-kube run (" + strings.TrimSuffix(path, ".lock") + ")")
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
