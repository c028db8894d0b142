package k8stest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// KubeVersion is the Kubernetes release tools/kube builds; build-kube checks
// that tools/kube/go.mod requires exactly this version.
const KubeVersion = "v1.37.2"

// Binary names inside BinDir.
const (
	APIServerBinary = "kube-apiserver"
	EtcdBinary      = "etcd"
)

// Environment variables.
const (
	// EnvRequire set to 1 turns "binaries not built" from a skip into a
	// failure, so CI cannot pass by skipping every cluster test.
	EnvRequire = "BULWARK_REQUIRE_KUBE"
	// EnvTestbinCache overrides the directory holding built test binaries
	// (default: the user cache dir + bulwark/testbin), shared with the
	// other test binaries Bulwark builds.
	EnvTestbinCache = "BULWARK_TESTBIN_CACHE"
)

const modulePath = "github.com/bulwark-security/bulwark"

// RepoRoot walks up from the working directory to the directory whose
// go.mod declares Bulwark's module (tests run in their package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// BinDir is where build-kube puts the binaries built from repoRoot's
// tools/kube: the testbin cache + "kube-<version>-<hash>". The hash covers
// the sources of tools/kube (go.mod, go.sum, the .go files; not a binary
// someone built there by hand), so a changed pin
// or replace gets a new directory instead of reusing stale binaries, and a
// fresh clone with the same files finds the binaries a previous run built.
func BinDir(repoRoot string) (string, error) {
	base := os.Getenv(EnvTestbinCache)
	if base == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("testbin cache dir: %w", err)
		}
		base = filepath.Join(c, "bulwark", "testbin")
	}
	h, err := sourceHash(filepath.Join(repoRoot, "tools", "kube"))
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "kube-"+KubeVersion+"-"+h), nil
}

// sourceHash hashes the names and contents of the source files under dir
// in a fixed order; 12 hex digits are plenty to tell builds apart.
func sourceHash(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.Type().IsRegular() && (name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", dir, err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", dir, err)
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
