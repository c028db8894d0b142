package k8stest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinDirKeyedBySources(t *testing.T) {
	root := t.TempDir()
	kube := filepath.Join(root, "tools", "kube")
	if err := os.MkdirAll(filepath.Join(kube, "cmd", "etcd"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(rel, s string) {
		if err := os.WriteFile(filepath.Join(kube, rel), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module x\nrequire k8s.io/kubernetes v1.37.2\n")
	write("go.sum", "a h1:x\n")
	write("cmd/etcd/main.go", "package main\n")
	t.Setenv(EnvTestbinCache, "/cache")
	d1, err := BinDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d1, "/cache/kube-"+KubeVersion+"-") {
		t.Errorf("BinDir = %s, want under /cache/kube-%s-", d1, KubeVersion)
	}
	if d, _ := BinDir(root); d != d1 {
		t.Errorf("BinDir not stable: %s then %s", d1, d)
	}
	write("go.sum", "a h1:y\n")
	d2, _ := BinDir(root)
	if d2 == d1 {
		t.Error("a changed go.sum kept the same binary directory")
	}
	write("cmd/etcd/main.go", "package main // changed\n")
	if d3, _ := BinDir(root); d3 == d2 {
		t.Error("a changed main.go kept the same binary directory")
	}
}

func TestRepoRootFindsBulwark(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "kube", "go.mod")); err != nil {
		t.Errorf("RepoRoot %s has no tools/kube/go.mod: %v", root, err)
	}
}

func TestStartSkipsWithoutBinaries(t *testing.T) {
	t.Setenv(EnvTestbinCache, t.TempDir()) // empty: nothing built there
	t.Setenv(EnvRequire, "")
	var skipped bool
	t.Run("start", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Start(t, Options{})
		t.Error("Start returned without binaries")
	})
	if !skipped {
		t.Fatal("Start did not skip when the binaries are missing")
	}
}

func TestBinDirIgnoresBuildOutput(t *testing.T) {
	root := t.TempDir()
	kube := filepath.Join(root, "tools", "kube")
	if err := os.MkdirAll(kube, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(kube, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d1, _ := BinDir(root)
	if err := os.WriteFile(filepath.Join(kube, "kube-apiserver"), []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d2, _ := BinDir(root); d2 != d1 {
		t.Error("a binary built inside tools/kube changed the cache key")
	}
}
