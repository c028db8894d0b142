package sensor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"sort"
	"sync"
	"testing"

	"github.com/bulwark-security/bulwark/internal/alerts"
	"github.com/bulwark-security/bulwark/internal/rules"
	"github.com/bulwark-security/bulwark/internal/sensor/intel"
)

const (
	c1 = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
	c2 = "bb01c2b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f801"
)

func defaultEngine(t testing.TB) *rules.Engine {
	t.Helper()
	files, err := rules.DefaultRuleFiles()
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.Compile(files)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testIntel(t testing.TB) *intel.Set {
	t.Helper()
	f, err := os.Open("testdata/intel.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := intel.Parse(f, "testdata/intel.txt")
	if err != nil {
		t.Fatal(err)
	}
	return intel.Build(context.Background(), []*intel.List{l}, intel.BuildOptions{})
}

// collect is a Sink keeping every alert.
type collect struct {
	mu  sync.Mutex
	got []alerts.Alert
}

func (c *collect) WriteAlert(_ *alerts.Alert, enc []byte) error {
	var a alerts.Alert
	if err := json.Unmarshal(enc, &a); err != nil {
		return err
	}
	c.mu.Lock()
	c.got = append(c.got, a)
	c.mu.Unlock()
	return nil
}

// ruleAt lists "rule @ container" for each alert, sorted.
func ruleAt(as []alerts.Alert) []string {
	var out []string
	for _, a := range as {
		id := a.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		out = append(out, a.Rule+" @ "+id)
	}
	sort.Strings(out)
	return out
}

func replayFile(t testing.TB, path string) *Replay {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return &Replay{R: bytes.NewReader(b), Name: path}
}
