package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulwark-security/bulwark/internal/fsutil"
	"github.com/bulwark-security/bulwark/internal/rules"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Path is the audit log file (JSON lines, as kube-apiserver's
	// --audit-log-path or a managed cluster's export writes it).
	Path string
	// StatePath keeps the read offset, so a restart resumes where the
	// last processed line ended. Required.
	StatePath string
	// Cluster names the cluster in alerts.
	Cluster string
	// Poll is how often the file is checked for new lines and rotation
	// (default 250ms). BatchLines bounds the lines processed (and
	// committed) together (default 2000).
	Poll       time.Duration
	BatchLines int
	// RotateGrace is how long a renamed-away file keeps being read after
	// its last new line before the follower moves to the new file (default
	// 2s): a writer told to reopen by a signal (logrotate's postrotate)
	// goes on appending to the old file until it does.
	RotateGrace time.Duration
	// FromEnd starts a file with no saved state at its end instead of its
	// beginning (for a huge existing log).
	FromEnd bool
	Logger  *slog.Logger
}

// Follower reads an audit log file as it grows, across rotation by rename
// and create (logrotate's default, kube-apiserver's own lumberjack) and by
// copytruncate, and hands its lines to a Processor. Its offset is written to
// StatePath (atomically, after the lines before it were processed and their
// alerts accepted), so neither a crash nor a restart loses or repeats a
// line — a line processed but not yet committed when the process dies is
// processed again, and its alerts get the same ids.
//
// Limits, stated: with copytruncate, lines the writer appends between the
// follower's last read and the truncation are lost (the copy, not the
// followed file, holds them) — rename rotation has no such window. After a
// restart, a file rotated away while Bulwark was down is found again by
// its inode among its siblings in the directory and finished first, then
// every sibling written since, oldest first (catchUp), so a follower down
// or behind across several rotations reads the files in between too
// (compressed ones excepted: they are reported, not read).
type Follower struct {
	cfg  FollowerConfig
	proc *Processor
	log  *slog.Logger
	buf  []byte // read buffer, reused (Run is one goroutine)

	lines, malformed, oversized atomic.Int64
}

// followState is the durable position.
type followState struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
	// Head is the SHA-256 of the file's first HeadLen bytes: a file that
	// was truncated and written again past Offset keeps its inode, but not
	// its head.
	HeadLen int    `json:"headLen"`
	Head    string `json:"head"`
}

const headBytes = 256

// NewFollower checks cfg and builds a follower.
func NewFollower(cfg FollowerConfig, proc *Processor) (*Follower, error) {
	if cfg.Path == "" || cfg.StatePath == "" {
		return nil, errors.New("new audit follower: a file and a state path are required")
	}
	if proc == nil {
		return nil, errors.New("new audit follower: a processor is required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.BatchLines <= 0 {
		cfg.BatchLines = 2000
	}
	if cfg.RotateGrace <= 0 {
		cfg.RotateGrace = 2 * time.Second
	}
	f := &Follower{cfg: cfg, proc: proc, log: cfg.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

// FollowerStats are the follower's counters.
type FollowerStats struct {
	Lines     int64 // lines processed
	Malformed int64 // lines that were not JSON audit events (skipped)
	Oversized int64 // lines above rules.MaxAuditEventSize (skipped)
}

// Stats returns the counters.
func (f *Follower) Stats() FollowerStats {
	return FollowerStats{Lines: f.lines.Load(), Malformed: f.malformed.Load(), Oversized: f.oversized.Load()}
}

// openFile is the file being read and where.
type openFile struct {
	f        *os.File
	fi       os.FileInfo
	dev, ino uint64
	off      int64
	// head and headLen are the hash of the first bytes as last saved.
	head    string
	headLen int
	// lastData is when lines were last read; rotated when a new file
	// replaced this one at Path.
	lastData, rotated time.Time
}

func (o *openFile) close() {
	if o != nil && o.f != nil {
		o.f.Close()
	}
}

// Run follows the file until ctx ends. It returns an error only for
// problems that retrying cannot fix (an unreadable state file, or one
// another process holds: StatePath+".lock" is locked meanwhile); a missing
// log file is waited for, a failing sink is retried with backoff.
func (f *Follower) Run(ctx context.Context) error {
	release, err := lockState(f.cfg.StatePath)
	if err != nil {
		return err
	}
	defer release()
	st, err := f.loadState()
	if err != nil {
		return err
	}
	cur, err := f.resume(ctx, st)
	if err != nil {
		return err
	}
	defer func() { cur.close() }()
	tick := time.NewTicker(f.cfg.Poll)
	defer tick.Stop()
	for {
		if cur == nil {
			cur = f.open(0, false)
		}
		if cur != nil {
			// Rotation first: a truncated file must be noticed before
			// reading at the old offset would consume its new content.
			next, err := f.checkRotation(ctx, cur)
			if err != nil {
				return err
			}
			cur = next
		}
		if cur != nil {
			if err := f.drain(ctx, cur, false); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// resume reopens the position of the saved state.
func (f *Follower) resume(ctx context.Context, st *followState) (*openFile, error) {
	if st == nil {
		return f.open(0, f.cfg.FromEnd), nil
	}
	cur := f.open(0, false)
	if cur != nil && cur.dev == st.Dev && cur.ino == st.Inode {
		if cur.fi.Size() >= st.Offset && f.headMatches(cur, st) {
			cur.off, cur.head, cur.headLen = st.Offset, st.Head, st.HeadLen
		} else {
			f.log.Warn("audit log was truncated since the last run; reading it from the start", "path", f.cfg.Path)
		}
		return cur, nil
	}
	// The file was rotated while we were away: finish the old one if it
	// is still in the directory, then the ones rotated after it.
	var skip []os.FileInfo
	if cur != nil {
		skip = append(skip, cur.fi)
	}
	if old := f.findRotated(st); old != nil {
		old.off = st.Offset
		f.log.Info("finishing the rotated audit log first", "path", old.f.Name(), "offset", st.Offset)
		if err := f.drain(ctx, old, true); err != nil {
			old.close()
			cur.close()
			return nil, err
		}
		old.close()
		if err := f.catchUp(ctx, old.fi.ModTime(), append(skip, old.fi)...); err != nil {
			cur.close()
			return nil, err
		}
	} else {
		f.log.Warn("the audit log read last time was rotated away and is gone; lines after the saved offset in it are lost",
			"path", f.cfg.Path, "offset", st.Offset)
		// What was rotated away after the state was last saved may still
		// be there.
		if sfi, err := os.Stat(f.cfg.StatePath); err == nil {
			if err := f.catchUp(ctx, sfi.ModTime(), skip...); err != nil {
				cur.close()
				return nil, err
			}
		}
	}
	if cur != nil {
		if err := f.save(cur); err != nil {
			cur.close()
			return nil, err
		}
	}
	return cur, nil
}

// open opens cfg.Path (nil when it does not exist yet).
func (f *Follower) open(off int64, atEnd bool) *openFile {
	fh, err := os.Open(f.cfg.Path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.log.Warn("cannot open the audit log; will retry", "path", f.cfg.Path, "err", err)
		}
		return nil
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil
	}
	o := &openFile{f: fh, fi: fi, off: off}
	o.dev, o.ino = fileID(fi)
	if atEnd {
		o.off = fi.Size()
	}
	return o
}

// findRotated looks for the state's file among the log's siblings.
func (f *Follower) findRotated(st *followState) *openFile {
	if st.Inode == 0 {
		return nil
	}
	dir := filepath.Dir(f.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	stem := strings.TrimSuffix(filepath.Base(f.cfg.Path), filepath.Ext(f.cfg.Path))
	for i, e := range ents {
		if i > 10_000 {
			break
		}
		if !strings.HasPrefix(e.Name(), stem) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if dev, ino := fileID(fi); dev == st.Dev && ino == st.Inode {
			fh, err := os.Open(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil
			}
			return &openFile{f: fh, fi: fi, dev: dev, ino: ino}
		}
	}
	return nil
}

// compressedExts are rotated files catchUp cannot read (logrotate's
// compress, lumberjack's Compress).
var compressedExts = []string{".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"}

// catchUp reads, oldest first, every rotated sibling of the log (same name
// stem, in its directory) modified at or after after, except the files in
// skip: the ones rotated away between the file just finished and the one
// now at Path, which a follower down or behind across two rotations would
// otherwise never read. Each is read whole, with the state saved in it as
// it goes (a crash resumes there). Reading a line twice is harmless (alert
// ids derive from the events; central drops replays); skipping one loses
// its alerts, so an equal modification time counts as after.
func (f *Follower) catchUp(ctx context.Context, after time.Time, skip ...os.FileInfo) error {
	dir := filepath.Dir(f.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	stem := strings.TrimSuffix(filepath.Base(f.cfg.Path), filepath.Ext(f.cfg.Path))
	state := filepath.Base(f.cfg.StatePath)
	type cand struct {
		path string
		fi   os.FileInfo
	}
	var cands []cand
	for i, e := range ents {
		if i > 10_000 {
			break
		}
		name := e.Name()
		if !strings.HasPrefix(name, stem) || !e.Type().IsRegular() || name == filepath.Base(f.cfg.Path) ||
			(filepath.Dir(f.cfg.StatePath) == dir && strings.HasPrefix(name, state)) {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().Before(after) || slices.ContainsFunc(skip, func(s os.FileInfo) bool { return s != nil && os.SameFile(s, fi) }) {
			continue
		}
		cands = append(cands, cand{filepath.Join(dir, name), fi})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(a.fi.ModTime().Compare(b.fi.ModTime()), strings.Compare(a.path, b.path))
	})
	for _, c := range cands {
		if ctx.Err() != nil {
			return nil
		}
		if slices.ContainsFunc(compressedExts, func(ext string) bool { return strings.HasSuffix(c.path, ext) }) {
			f.log.Warn("a compressed audit log was rotated away before it was read; its lines are not read", "path", c.path)
			continue
		}
		fh, err := os.Open(c.path)
		if err != nil {
			f.log.Warn("cannot open an audit log rotated away before it was read; its lines are lost", "path", c.path, "err", err)
			continue
		}
		o := &openFile{f: fh, fi: c.fi}
		o.dev, o.ino = fileID(c.fi)
		f.log.Info("reading an audit log rotated away before it was read", "path", c.path)
		err = f.save(o)
		if err == nil {
			err = f.drain(ctx, o, true)
		}
		fh.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkRotation notices a renamed-away or truncated file and returns the
// file to read next.
func (f *Follower) checkRotation(ctx context.Context, cur *openFile) (*openFile, error) {
	fi, err := os.Stat(f.cfg.Path)
	switch {
	case err == nil && !os.SameFile(fi, cur.fi):
		// Renamed away and recreated. Keep reading the old file until the
		// writer has been quiet in it for the grace period, then finish it
		// (a last line without newline included) and move on.
		now := time.Now()
		if cur.rotated.IsZero() {
			cur.rotated = now
		}
		if now.Sub(cur.rotated) < f.cfg.RotateGrace || now.Sub(cur.lastData) < f.cfg.RotateGrace {
			return cur, nil
		}
		if err := f.drain(ctx, cur, true); err != nil {
			return cur, err
		}
		done := cur.fi
		if cfi, err := cur.f.Stat(); err == nil {
			done = cfi
		}
		f.log.Info("audit log rotated; following the new file", "path", f.cfg.Path)
		next := f.open(0, false)
		// A writer faster than the grace period may have rotated again:
		// read what was rotated away since, before the file now at Path
		// (opened first, so a rotation meanwhile is caught up here too).
		skip := []os.FileInfo{done}
		if next != nil {
			skip = append(skip, next.fi)
		}
		if err := f.catchUp(ctx, done.ModTime(), skip...); err != nil {
			next.close()
			return cur, err
		}
		cur.close()
		if next != nil {
			if err := f.save(next); err != nil {
				next.close()
				return nil, err
			}
		}
		return next, nil
	case err != nil:
		// Renamed away, not recreated yet: keep the old one open.
		return cur, nil
	}
	cfi, err := cur.f.Stat()
	if err != nil {
		return cur, nil
	}
	cur.fi = cfi
	if cfi.Size() < cur.off || !f.headMatchesOpen(cur) {
		f.log.Info("audit log truncated (copytruncate); reading it from the start", "path", f.cfg.Path)
		cur.off = 0
		if err := f.save(cur); err != nil {
			return cur, err
		}
		if err := f.drain(ctx, cur, false); err != nil {
			return cur, err
		}
	}
	return cur, nil
}

// chunk is how much is read at once: a maximal line plus slack.
const chunk = rules.MaxAuditEventSize + 64<<10

// drain processes every complete line from cur.off to the end of the file
// (final: the last line even without its newline).
func (f *Follower) drain(ctx context.Context, cur *openFile, final bool) error {
	if f.buf == nil {
		f.buf = make([]byte, chunk)
	}
	buf := f.buf
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, err := cur.f.ReadAt(buf, cur.off)
		if err != nil && !errors.Is(err, io.EOF) {
			f.log.Warn("read audit log", "path", cur.f.Name(), "err", err)
			return nil
		}
		if n == 0 {
			return nil
		}
		if !f.headMatchesOpen(cur) {
			// Truncated and rewritten since checkRotation looked (checked
			// after the read, so what was read is never the new content at
			// the old offset): leave it to the next checkRotation.
			return nil
		}
		data := buf[:n]
		cur.lastData = time.Now()
		end := bytes.LastIndexByte(data, '\n') + 1
		if final && n < len(buf) {
			end = n
		}
		if end == 0 {
			switch {
			case n == len(buf):
				// No newline in a whole chunk: a line above the limit. Skip
				// to its end.
				skipped, found := f.skipLine(cur, buf)
				f.oversized.Add(1)
				f.log.Warn("skipping an audit log line above the size limit", "path", cur.f.Name(), "offset", cur.off)
				cur.off += skipped
				if !found {
					return nil
				}
				continue
			case final:
				end = n
			default:
				return nil // a partial line: wait for the rest
			}
		}
		if err := f.processLines(ctx, cur, string(data[:end])); err != nil {
			return err
		}
		if end < n && !final {
			continue
		}
		if n < len(buf) {
			return nil
		}
	}
}

// skipLine finds the end of an over-long line starting at cur.off,
// returning how many bytes to skip and whether its newline was found.
func (f *Follower) skipLine(cur *openFile, buf []byte) (int64, bool) {
	var skipped int64
	for {
		n, _ := cur.f.ReadAt(buf, cur.off+skipped)
		if n == 0 {
			return skipped, false
		}
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return skipped + int64(i) + 1, true
		}
		skipped += int64(n)
	}
}

// processLines hands complete lines (text, starting at cur.off) to the
// processor in batches, committing the offset after each.
func (f *Follower) processLines(ctx context.Context, cur *openFile, text string) error {
	var batch []string
	consumed := 0
	flush := func(upto int) error {
		backoff := 100 * time.Millisecond
		for {
			err := f.proc.Process(ctx, f.cfg.Cluster, batch)
			if err == nil {
				break
			}
			f.log.Warn("audit alerts not stored; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		}
		f.lines.Add(int64(len(batch)))
		cur.off += int64(upto - consumed)
		consumed = upto
		batch = batch[:0]
		return f.save(cur)
	}
	for pos := 0; pos < len(text); {
		nl := strings.IndexByte(text[pos:], '\n')
		next := len(text)
		line := text[pos:]
		if nl >= 0 {
			line, next = text[pos:pos+nl], pos+nl+1
		}
		pos = next
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case len(line) > rules.MaxAuditEventSize:
			f.oversized.Add(1)
		case line[0] != '{':
			f.malformed.Add(1)
		default:
			batch = append(batch, line)
		}
		if len(batch) >= f.cfg.BatchLines {
			if err := flush(pos); err != nil || ctx.Err() != nil {
				return err
			}
		}
	}
	if len(batch) > 0 || consumed < len(text) {
		if len(batch) == 0 {
			cur.off += int64(len(text) - consumed)
			return f.save(cur)
		}
		return flush(len(text))
	}
	return nil
}

func (f *Follower) loadState() (*followState, error) {
	b, err := os.ReadFile(f.cfg.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read audit follower state %s: %w", f.cfg.StatePath, err)
	}
	var st followState
	if err := json.Unmarshal(b, &st); err != nil || st.Offset < 0 {
		return nil, fmt.Errorf("read audit follower state %s: corrupt (delete it to start over): %v", f.cfg.StatePath, err)
	}
	return &st, nil
}

// head hashes the first n bytes of the open file.
func head(o *openFile, n int) (string, int) {
	buf := make([]byte, n)
	m, _ := o.f.ReadAt(buf, 0)
	sum := sha256.Sum256(buf[:m])
	return hex.EncodeToString(sum[:]), m
}

func (f *Follower) headMatches(o *openFile, st *followState) bool {
	if st.HeadLen == 0 {
		return true
	}
	h, m := head(o, st.HeadLen)
	return m == st.HeadLen && h == st.Head
}

// headMatchesOpen compares the open file's head with the one last saved.
func (f *Follower) headMatchesOpen(o *openFile) bool {
	if o.headLen == 0 {
		return true
	}
	h, m := head(o, o.headLen)
	return m == o.headLen && h == o.head
}

// save writes the position atomically (temp file, fsync, rename).
func (f *Follower) save(o *openFile) error {
	h, m := head(o, headBytes)
	if int64(m) > o.off {
		// Only what has been read is vouched for.
		h, m = head(o, int(o.off))
	}
	o.head, o.headLen = h, m
	st := followState{Path: f.cfg.Path, Dev: o.dev, Inode: o.ino, Offset: o.off, HeadLen: m, Head: h}
	b, _ := json.Marshal(st)
	if err := fsutil.WriteFileAtomic(f.cfg.StatePath, b, 0o600); err != nil {
		return fmt.Errorf("save audit follower state: %w", err)
	}
	return nil
}
