package testimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// modulePath is the module this package lives in; sourceDir looks for its
// go.mod to find testdata when the package is run from a compiled binary.
const modulePath = "github.com/bulwark-security/bulwark"

// sourceDir returns internal/testimage/testdata of the source tree: from
// this file's compile-time path when it still exists (tests, go run), else
// by walking up from the working directory to the module root.
func sourceDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Join(filepath.Dir(file), "testdata")
		if fi, err := os.Stat(filepath.Join(d, "src")); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", fmt.Errorf("locate test image sources: %w", err)
	}
	return filepath.Join(root, "internal", "testimage", "testdata"), nil
}

// RepoRoot walks up from the working directory to the directory whose
// go.mod declares Bulwark's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("module "+modulePath)) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of " + modulePath + " above the working directory")
		}
		dir = parent
	}
}

// requirement is something a recipe needs from the machine; a failed check
// turns into ErrUnavailable.
type requirement struct {
	name  string
	check func(ctx context.Context) error
}

var (
	needRoot = requirement{"root (chroot, file ownership)", func(context.Context) error {
		if os.Geteuid() != 0 {
			return errors.New("not running as root")
		}
		return nil
	}}
	needDebootstrap = requirement{"debootstrap (apt-get install debootstrap debian-archive-keyring)", func(context.Context) error {
		return lookTools("debootstrap", "chroot")
	}}
	needNPM = requirement{"npm (apt-get install nodejs npm)", func(context.Context) error {
		return lookTools("npm", "node")
	}}
	needAptDownload = requirement{"apt-get and dpkg-deb (a Debian-family host with apt lists)", func(context.Context) error {
		return lookTools("apt-get", "dpkg-deb")
	}}
	needGoToolchain = requirement{"Go toolchain " + goToolchain + " from the Go module proxy", checkGoToolchain}
)

func lookTools(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, err := lookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not found in PATH: %s", strings.Join(missing, ", "))
	}
	return nil
}

// lookPath also searches the sbin directories, which a non-login root
// shell may lack from PATH (debootstrap and chroot live there).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// goCommand returns the go command: the one in PATH, else the usual
// install location.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	const p = "/usr/local/go/bin/go"
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("go command not found in PATH or " + p)
	}
	return p, nil
}

func checkGoToolchain(ctx context.Context) error {
	goCmd, err := goCommand()
	if err != nil {
		return err
	}
	out, err := command{name: goCmd, args: []string{"version"}, env: []string{"GOTOOLCHAIN=" + goToolchain}}.output(ctx, nil)
	if err != nil {
		return err
	}
	if !strings.Contains(out, goToolchain+" ") {
		return fmt.Errorf("GOTOOLCHAIN=%s go version printed %q", goToolchain, strings.TrimSpace(out))
	}
	return nil
}

// command is one external program run by a recipe.
type command struct {
	name string
	args []string
	dir  string
	// env is added to the environment (later entries win).
	env []string
	// cleanEnv starts from an empty environment instead of os.Environ().
	cleanEnv bool
}

func (c command) String() string { return c.name + " " + strings.Join(c.args, " ") }

// run runs the command; its output goes to the log at debug level and, on
// failure, its tail into the error.
func (c command) run(ctx context.Context, log *slog.Logger) error {
	_, err := c.output(ctx, log)
	return err
}

func (c command) output(ctx context.Context, log *slog.Logger) (string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path, err := lookPath(c.name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, c.args...)
	ownProcessGroup(cmd)
	cmd.Dir = c.dir
	if c.cleanEnv {
		cmd.Env = append([]string{}, c.env...)
	} else {
		cmd.Env = append(os.Environ(), c.env...)
	}
	var stdout, combined bytes.Buffer
	cmd.Stdout = io.MultiWriter(&stdout, &combined)
	cmd.Stderr = &combined
	log.Debug("run", "cmd", c.String(), "dir", c.dir)
	err = cmd.Run()
	if log.Enabled(ctx, slog.LevelDebug) {
		sc := bufio.NewScanner(bytes.NewReader(combined.Bytes()))
		for sc.Scan() {
			log.Debug(c.name, "out", sc.Text())
		}
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\n%s", c, err, tail(combined.String(), 3000))
	}
	return stdout.String(), nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// hashTree hashes the regular files below dir (names and contents), for
// recipe keys: editing a test program rebuilds the images that carry it.
func hashTree(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies a regular file, creating dst's directory.
func copyFile(dst, src string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // not subject to umask
}
