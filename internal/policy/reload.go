package policy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Watcher holds the current Set and reloads it when the policy files
// change (polled by modification time and size: no inotify needed, works on
// ConfigMap volumes whose symlinks are swapped) or when Replace is called
// with policies from central. A reload that fails keeps the previous Set
// and logs the errors with their lines.
type Watcher struct {
	loader *Loader
	paths  []string
	log    *slog.Logger

	cur atomic.Pointer[Set]

	mu       sync.Mutex
	stamp    string
	central  []Source
	lastErr  error
	onReload func(*Set)
}

// NewWatcher loads paths once (an error here is returned: a webhook must
// not start without its policies) and returns the Watcher.
func NewWatcher(ctx context.Context, l *Loader, paths []string, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{loader: l, paths: paths, log: log}
	if err := w.reload(ctx, true); err != nil {
		return nil, err
	}
	return w, nil
}

// Current is the Set in force.
func (w *Watcher) Current() *Set { return w.cur.Load() }

// LastError is the error of the last failed reload (nil after a success).
func (w *Watcher) LastError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// OnReload registers f to be called with every new Set.
func (w *Watcher) OnReload(f func(*Set)) {
	w.mu.Lock()
	w.onReload = f
	w.mu.Unlock()
}

// Replace sets the policies that come from central (loaded together with
// the files) and reloads.
func (w *Watcher) Replace(ctx context.Context, central []Source) error {
	w.mu.Lock()
	w.central = central
	w.mu.Unlock()
	return w.reload(ctx, true)
}

// Run polls the files every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.reload(ctx, false); err != nil {
				w.log.Error("policy reload failed; keeping the previous policies", "err", err)
			}
		}
	}
}

// stamp is the files' names, sizes and modification times.
func (w *Watcher) fileStamp() (string, error) {
	files, err := ExpandPaths(w.paths)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("stat policy %s: %w", f, err)
		}
		fmt.Fprintf(&b, "%s|%d|%d\n", f, st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (w *Watcher) reload(ctx context.Context, force bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var stamp string
	if len(w.paths) > 0 {
		var err error
		if stamp, err = w.fileStamp(); err != nil {
			w.lastErr = err
			return err
		}
		if !force && stamp == w.stamp {
			return nil
		}
	}
	var srcs []Source
	if len(w.paths) > 0 {
		files, err := ExpandPaths(w.paths)
		if err != nil {
			w.lastErr = err
			return err
		}
		for _, f := range files {
			b, err := readFile(f)
			if err != nil {
				w.lastErr = err
				return err
			}
			srcs = append(srcs, Source{Name: f, Data: b})
		}
	}
	srcs = append(srcs, w.central...)
	set, err := w.loader.Load(ctx, srcs...)
	if err != nil {
		w.lastErr = err
		w.stamp = stamp // do not retry the same broken files every tick
		return err
	}
	w.stamp, w.lastErr = stamp, nil
	old := w.cur.Swap(set)
	if old == nil || old.Version() != set.Version() {
		w.log.Info("policies loaded", "policies", len(set.Policies()), "version", set.Version())
		if w.onReload != nil {
			w.onReload(set)
		}
	}
	return nil
}
