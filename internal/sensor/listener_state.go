package sensor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-security/bulwark/internal/fsutil"
)

// The unusual-listener detector's learned baseline (which ports each image
// listens on, and since when it is learned) is kept in one small JSON file
// so a restart of the sensor does not start learning again — and does not
// open a fresh learning window in which an attacker's listener would be
// learned as normal.
//
// Format (version 1):
//
//	{"version":1,"saved":"2026-11-27T21:00:00Z",
//	 "images":{"docker.io/library/nginx:1.25":{"since":"2026-11-27T20:00:00Z","ports":[80,443]}}}
//
// Written atomically (temporary file in the same directory, fsync, rename,
// directory fsync), bounded on read (MaxListenerStateBytes, the in-memory
// caps of images and ports per image), and an unreadable file is reported
// (ErrListenerState) and set aside as <file>.corrupt: the detector starts
// fresh, the sensor never stops for it.

// ListenerStateVersion is the format version written by Save.
const ListenerStateVersion = 1

// MaxListenerStateBytes caps the state file read at start.
const MaxListenerStateBytes = 8 << 20

// ErrListenerState: the state file is corrupt, too large or of an unknown version.
var ErrListenerState = errors.New("listener state file unusable")

type listenerStateFile struct {
	Version int                           `json:"version"`
	Saved   time.Time                     `json:"saved"`
	Images  map[string]listenerStateImage `json:"images"`
}

type listenerStateImage struct {
	Since time.Time `json:"since"`
	Ports []int64   `json:"ports"`
}

// Load replaces the learned baseline with the one saved at path. A missing
// file is not an error (first start). A corrupt, oversized or unknown-version
// file returns an error wrapping ErrListenerState and is renamed to
// path+".corrupt"; the detector keeps an empty baseline.
func (d *ListenerDetector) Load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load listener state %s: %w", path, err)
	}
	st, perr := parseListenerState(f)
	f.Close()
	if perr != nil {
		_ = os.Rename(path, path+".corrupt")
		return fmt.Errorf("load listener state %s (set aside as %s.corrupt, learning from scratch): %w", path, filepath.Base(path), perr)
	}
	images := make(map[string]*imagePorts, len(st.Images))
	for img, ip := range st.Images {
		if len(images) >= maxLearnedImages {
			break
		}
		p := &imagePorts{since: ip.Since, ports: make(map[int64]bool, len(ip.Ports))}
		for _, port := range ip.Ports {
			if port > 0 && port < 65536 && len(p.ports) < maxPortsPerImage {
				p.ports[port] = true
			}
		}
		images[img] = p
	}
	d.mu.Lock()
	d.images, d.dirty = images, false
	d.mu.Unlock()
	return nil
}

// parseListenerState decodes and checks one state file (the fuzzed parser).
func parseListenerState(r io.Reader) (*listenerStateFile, error) {
	var st listenerStateFile
	if err := fsutil.DecodeJSONLimited(r, MaxListenerStateBytes, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrListenerState, err)
	}
	if st.Version != ListenerStateVersion {
		return nil, fmt.Errorf("%w: version %d (this sensor reads %d)", ErrListenerState, st.Version, ListenerStateVersion)
	}
	for img, ip := range st.Images {
		if img == "" || len(img) > 4096 {
			return nil, fmt.Errorf("%w: empty or oversized image key", ErrListenerState)
		}
		if y := ip.Since.Year(); y < 2000 || y > 9999 {
			return nil, fmt.Errorf("%w: image %q: implausible learning start %v", ErrListenerState, trunc(img, 80), ip.Since)
		}
	}
	return &st, nil
}

// Save writes the learned baseline to path atomically when it changed since
// the last Save (or Load); it reports whether it wrote.
func (d *ListenerDetector) Save(path string) (bool, error) {
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return false, nil
	}
	st := listenerStateFile{Version: ListenerStateVersion, Saved: time.Now().UTC(), Images: make(map[string]listenerStateImage, len(d.images))}
	for img, ip := range d.images {
		if strings.HasPrefix(img, "container:") {
			continue // an unattributed container's ports: its id does not outlive it
		}
		ports := make([]int64, 0, len(ip.ports))
		for p := range ip.ports {
			ports = append(ports, p)
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
		st.Images[img] = listenerStateImage{Since: ip.since.UTC(), Ports: ports}
	}
	d.dirty = false
	d.mu.Unlock()
	b, err := json.Marshal(&st)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
			err = fsutil.WriteFileAtomic(path, b, 0o600)
		}
	}
	if err != nil {
		d.mu.Lock()
		d.dirty = true // try again next time
		d.mu.Unlock()
		return false, fmt.Errorf("save listener state %s: %w", path, err)
	}
	return true, nil
}

// RunPersistence saves the baseline every interval while it changes, and
// once more when ctx ends. Errors are logged (the detector keeps working).
func (d *ListenerDetector) RunPersistence(ctx context.Context, path string, interval time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 30 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if _, err := d.Save(path); err != nil {
				log.Warn("listener baseline not saved", "err", err)
			}
			return
		case <-t.C:
			if _, err := d.Save(path); err != nil {
				log.Warn("listener baseline not saved", "err", err)
			}
		}
	}
}
