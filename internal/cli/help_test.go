package cli

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commandPaths lists every command of the CLI as argument lists
// (["scan", "image"]), from the command tree itself so none is forgotten.
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	a := &app{env: Env{Stdout: io.Discard, Stderr: io.Discard}, logLvl: new(slog.LevelVar), log: slog.New(slog.DiscardHandler)}
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(a.rootCmd(), nil)
	if len(paths) < 12 { // root, scan ×4, db ×3, demo, version, completion ×5
		t.Fatalf("only %d commands found: %v", len(paths), paths)
	}
	return paths
}

func TestHelpEveryCommand(t *testing.T) {
	for _, path := range commandPaths(t) {
		t.Run(strings.Join(append([]string{"bulwark"}, path...), " "), func(t *testing.T) {
			r := run(t, append(path, "--help")...).want(t, ExitOK)
			for _, want := range []string{"Usage:", "Examples:", "bulwark"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("--help lacks %q:\n%s", want, r.stdout)
				}
			}
			// The examples are runnable bulwark commands.
			_, ex, _ := strings.Cut(r.stdout, "Examples:")
			if !strings.Contains(ex, "bulwark ") {
				t.Errorf("examples do not show a bulwark command:\n%s", ex)
			}
		})
	}
}

func TestHelpTeaches(t *testing.T) {
	r := run(t, "--help").want(t, ExitOK)
	for _, want := range []string{"Exit codes", "BULWARK_", "--config"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("root --help lacks %q", want)
		}
	}
	r = run(t, "scan", "image", "--help").want(t, ExitOK)
	for _, want := range []string{"docker-archive:", "oci-layout:", "--fail-on", "--password-stdin", "--platform"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("scan image --help lacks %q", want)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := run(t, args...).want(t, ExitOK)
		if strings.TrimSpace(r.stdout) != "bulwark test" {
			t.Errorf("%v: %q", args, r.stdout)
		}
	}
}

func TestCompletion(t *testing.T) {
	r := run(t, "completion", "bash").want(t, ExitOK)
	for _, want := range []string{"bash completion", "bulwark", "complete "} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bash completion script lacks %q", want)
		}
	}
	for _, shell := range []string{"zsh", "fish", "powershell"} {
		if r := run(t, "completion", shell).want(t, ExitOK); len(r.stdout) < 100 {
			t.Errorf("%s completion: %d bytes", shell, len(r.stdout))
		}
	}
	// Dynamic completion of flag values.
	r = run(t, "__complete", "scan", "image", "--format", "").want(t, ExitOK)
	for _, f := range []string{"table", "json", "sarif", "cyclonedx", "spdx"} {
		if !strings.Contains(r.stdout, f+"\n") {
			t.Errorf("--format completion lacks %s:\n%s", f, r.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"scan", "image"},           // no REF
		{"scan", "image", "a", "b"}, // two
		{"scan", "image", "--nope"}, // unknown flag
		{"nope"},                    // unknown command
		{"--log-level", "loud", "version"},
	} {
		r := run(t, args...)
		if r.code != ExitError || !strings.Contains(r.stderr, "Error:") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}
