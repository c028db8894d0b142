package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestConfigSkipsExports: the configuration file's "exports:" list of
// objects (read by internal/export for bulwark server) is not a flag value
// and must not make the flag loader fail.
func TestConfigSkipsExports(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bulwark.yaml")
	if err := os.WriteFile(p, []byte("server:\n  workers: 3\nexports:\n  - name: siem\n    type: syslog\n    address: siem:514\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c.lookup([]string{"server"}, "workers"); !ok || v != "3" {
		t.Errorf("server.workers = %q, %v", v, ok)
	}
	for k := range c.values {
		if k == "exports" || len(k) > 8 && k[:8] == "exports." {
			t.Errorf("exports leaked into flag values: %s", k)
		}
	}
}
