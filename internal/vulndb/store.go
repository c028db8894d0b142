package vulndb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// On-disk layout of a database directory:
//
//	index.bvdb              the compiled index Open reads (see index.go)
//	sources/NAME.json.zst   the normalised records of one source
//	lock                    held (flock) while an import runs
//
// Sources are kept so that re-importing one replaces only it, and so that
// the index can be rebuilt (after a Bulwark upgrade changes its format)
// without the original inputs.
const (
	indexFile   = "index.bvdb"
	sourcesDir  = "sources"
	sourceExt   = ".json.zst"
	lockFile    = "lock"
	sourceSchem = 2 // 2: affected entries keep Go imports
)

// sourceData is one source as stored.
type sourceData struct {
	Schema  int                `json:"schema"`
	Status  SourceStatus       `json:"status"`
	Records []*record          `json:"records,omitempty"`
	KEV     map[string]KEV     `json:"kev,omitempty"`
	CVE     map[string]cveInfo `json:"cve,omitempty"`
	EPSS    map[string]float64 `json:"epss,omitempty"`
}

var sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func checkSourceName(name string) error {
	if !sourceNameRE.MatchString(name) {
		return fmt.Errorf("bad source name %q: want lower-case letters, digits, '.', '_' or '-' (at most 64)", truncate(name))
	}
	return nil
}

// writeSource stores s atomically under dir/sources.
func writeSource(dir string, s *sourceData) error {
	if err := checkSourceName(s.Status.Name); err != nil {
		return err
	}
	s.Schema = sourceSchem
	sd := filepath.Join(dir, sourcesDir)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return fmt.Errorf("write source %s: %w", s.Status.Name, err)
	}
	return writeAtomic(filepath.Join(sd, s.Status.Name+sourceExt), func(w io.Writer) error {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return err
		}
		if err := json.NewEncoder(zw).Encode(s); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	})
}

// readSources loads every stored source, sorted by name.
func readSources(dir string) ([]*sourceData, error) {
	sd := filepath.Join(dir, sourcesDir)
	ents, err := os.ReadDir(sd)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sources: %w", err)
	}
	var out []*sourceData
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), sourceExt) {
			continue
		}
		s, err := readSource(filepath.Join(sd, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Status.Name < out[j].Status.Name })
	return out, nil
}

func readSource(p string) (*sourceData, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", p, err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(8<<30))
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", p, err)
	}
	defer zr.Close()
	var s sourceData
	if err := json.NewDecoder(zr).Decode(&s); err != nil {
		return nil, fmt.Errorf("read source %s: %w (re-import it)", p, err)
	}
	if s.Schema != sourceSchem {
		return nil, fmt.Errorf("read source %s: schema %d, want %d (re-import it)", p, s.Schema, sourceSchem)
	}
	return &s, nil
}

// writeAtomic writes a file through a temporary file in the same
// directory, synced and renamed over the target: a crash leaves either the
// old file or the new one, never half of one, and readers that already
// opened (or mapped) the old file keep reading it intact.
func writeAtomic(target string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	if err = os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	if d, derr := os.Open(filepath.Dir(target)); derr == nil {
		d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}
