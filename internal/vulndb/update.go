package vulndb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bulwark-security/bulwark/internal/fsutil"
)

// Update: downloading the sources. `bulwark db update` (and central's
// --db-update-interval) fetch each configured source over HTTPS with a
// conditional request (If-None-Match / If-Modified-Since, from what the
// last download answered), so an unchanged feed costs one small request;
// a changed one is streamed to a file under dir/downloads (bounded size,
// SHA-256 computed on the way), and the changed sources are imported
// (Import: each replaces only its own source, the index is rewritten
// atomically, so scans and central's watcher see the old or the new
// database). A source whose download or import fails keeps its previous
// download and its previous records: one bad feed never empties the
// database. What each download answered is kept in
// dir/downloads/state.json.
//
//	dir/downloads/state.json    per source: URL, ETag, Last-Modified, SHA-256, size, times
//	dir/downloads/NAME/FILE     the last good download of source NAME

// Source is one feed to download.
type Source struct {
	// Name is the source's name in the database (as `db import --name`).
	Name string `json:"name" yaml:"name"`
	// URL is where it is downloaded from (https, or http for a mirror on
	// a trusted network; user:password@ for basic authentication).
	URL string `json:"url" yaml:"url"`
	// Format forces the input format; empty detects it from the
	// downloaded file's name and content.
	Format string `json:"format,omitempty" yaml:"format,omitempty"`
}

// osvBucket is OSV's public bucket of per-ecosystem zips.
const osvBucket = "https://osv-vulnerabilities.storage.googleapis.com/"

// DefaultSources are the public feeds `bulwark db update` downloads when
// no source list is given: OSV's per-ecosystem exports for the language
// ecosystems and distributions the scanner matches, CISA's KEV catalogue
// and FIRST's EPSS scores.
func DefaultSources() []Source {
	osv := []struct{ name, eco string }{
		{"osv-go", "Go"}, {"osv-npm", "npm"}, {"osv-pypi", "PyPI"}, {"osv-maven", "Maven"},
		{"osv-rubygems", "RubyGems"}, {"osv-crates-io", "crates.io"}, {"osv-nuget", "NuGet"},
		{"osv-packagist", "Packagist"}, {"osv-alpine", "Alpine"}, {"osv-debian", "Debian"},
		{"osv-ubuntu", "Ubuntu"}, {"osv-almalinux", "AlmaLinux"}, {"osv-rocky-linux", "Rocky Linux"},
		{"osv-red-hat", "Red Hat"},
	}
	out := make([]Source, 0, len(osv)+2)
	for _, o := range osv {
		out = append(out, Source{Name: o.name, URL: osvBucket + url.PathEscape(o.eco) + "/all.zip", Format: FormatOSV})
	}
	return append(out,
		Source{Name: "cisa-kev", URL: "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json",
			Format: FormatKEV},
		Source{Name: "epss", URL: "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz", Format: FormatEPSS},
	)
}

// ParseSources reads a source list, YAML or JSON:
//
//	sources:
//	  - name: osv-go
//	    url: https://mirror.example.com/osv/Go/all.zip
//	    format: osv        # optional
//
// Unknown fields, duplicate names, bad names, formats and URLs are errors.
func ParseSources(data []byte) ([]Source, error) {
	var doc struct {
		Sources []Source `yaml:"sources"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("source list: empty")
		}
		return nil, fmt.Errorf("source list: %w", err)
	}
	if len(doc.Sources) == 0 {
		return nil, errors.New("source list: no sources")
	}
	if err := CheckSources(doc.Sources); err != nil {
		return nil, fmt.Errorf("source list: %w", err)
	}
	return doc.Sources, nil
}

// CheckSources validates a source list.
func CheckSources(srcs []Source) error {
	seen := map[string]bool{}
	for i, s := range srcs {
		if err := checkSourceName(s.Name); err != nil {
			return fmt.Errorf("source %d: %w", i+1, err)
		}
		if seen[s.Name] {
			return fmt.Errorf("source %q: listed twice", s.Name)
		}
		seen[s.Name] = true
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("source %q: url %q: want an http(s) URL", s.Name, truncate(s.URL))
		}
		if s.Format != "" && !slices.Contains(formats, s.Format) {
			return fmt.Errorf("source %q: unknown format %q (want one of %s)", s.Name, truncate(s.Format), strings.Join(formats, ", "))
		}
	}
	return nil
}

// UpdateOptions tune Update.
type UpdateOptions struct {
	// Client downloads (nil: a client with a 30 s connect/header timeout,
	// proxies from the environment).
	Client *http.Client
	// UserAgent is sent with every request.
	UserAgent string
	// MaxBytes bounds one download (default 4 GiB): a larger answer is
	// an error and the source keeps its previous download.
	MaxBytes int64
	// Parallel is how many sources download at once (default 3).
	Parallel int
	// Logger receives a line per source; nil discards.
	Logger *slog.Logger
	// Limits bound what the import reads of each download.
	Limits Limits
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Progress, when set, is called with the bytes of each chunk
	// downloaded, from several goroutines at once (a progress bar).
	Progress func(n int64)
}

// Update outcomes.
const (
	UpdateUpdated   = "updated"   // downloaded and imported
	UpdateUnchanged = "unchanged" // the server answered 304, or the same bytes
	UpdateFailed    = "failed"    // download or import failed: the previous records stay
)

// UpdateResult is what Update did with one source.
type UpdateResult struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Status  string `json:"status"`
	Bytes   int64  `json:"bytes,omitempty"` // of the download (the last good one when unchanged)
	Records int    `json:"records,omitempty"`
	Error   string `json:"error,omitempty"`
	// Changed is when the source last changed (its last good download).
	Changed time.Time `json:"changed,omitzero"`
}

// downloadState is what the last good download of a source answered.
type downloadState struct {
	URL          string    `json:"url"`
	File         string    `json:"file"` // under dir/downloads/NAME
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	SHA256       string    `json:"sha256"`
	Size         int64     `json:"size"`
	Changed      time.Time `json:"changed"`
	Checked      time.Time `json:"checked"`
}

const (
	downloadsDir = "downloads"
	stateFile    = "state.json"
)

// Update downloads the sources and imports those that changed. It returns
// a result per source, in order, and an error naming every source that
// failed (the others are updated all the same).
func Update(ctx context.Context, dir string, srcs []Source, opts UpdateOptions) ([]UpdateResult, error) {
	if err := CheckSources(srcs); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	opts = opts.withDefaults()
	dl := filepath.Join(dir, downloadsDir)
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dl, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	defer unlock()
	state, err := readDownloadState(dl)
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}

	// Download, a few at a time.
	res := make([]UpdateResult, len(srcs))
	fetched := make([]*fetchedFile, len(srcs))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, s := range srcs {
		res[i] = UpdateResult{Name: s.Name, URL: redactURL(s.URL)}
		prev := state[s.Name]
		if prev != nil && prev.URL != s.URL {
			prev = nil // a new URL: no conditional request
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f, err := fetch(ctx, dl, s, prev, opts)
			switch {
			case err != nil:
				res[i].Status, res[i].Error = UpdateFailed, err.Error()
			case f == nil:
				res[i].Status = UpdateUnchanged
			default:
				fetched[i] = f
			}
		})
	}
	wg.Wait()

	// Import what changed, then keep it (and its answer) as the last good
	// download; a failed import leaves the previous one.
	now := opts.Now().UTC()
	for i, s := range srcs {
		if f := fetched[i]; f != nil {
			if prev := state[s.Name]; prev != nil && prev.URL == s.URL && prev.SHA256 == f.sum {
				// The server does not do conditional requests, but
				// the bytes are the same.
				os.RemoveAll(f.tmpDir)
				res[i].Status = UpdateUnchanged
				prev.ETag, prev.LastModified, prev.Checked = f.etag, f.lastModified, now
				continue
			}
			st, err := Import(ctx, dir, []string{f.path}, ImportOptions{Format: s.Format, Name: s.Name, Logger: opts.Logger,
				Limits: opts.Limits, Now: opts.Now})
			if err == nil {
				err = keepDownload(dl, s.Name, f)
			}
			if err != nil {
				os.RemoveAll(f.tmpDir)
				res[i].Status, res[i].Error = UpdateFailed, err.Error()
				continue
			}
			state[s.Name] = &downloadState{URL: s.URL, File: filepath.Base(f.path), ETag: f.etag, LastModified: f.lastModified,
				SHA256: f.sum, Size: f.size, Changed: now, Checked: now}
			res[i].Status = UpdateUpdated
			if len(st) == 1 {
				res[i].Records = st[0].Records
			}
		} else if p := state[s.Name]; p != nil && res[i].Status == UpdateUnchanged {
			p.Checked = now
		}
	}
	var failed []string
	for i := range res {
		if p := state[res[i].Name]; p != nil && p.URL == srcs[i].URL {
			res[i].Bytes, res[i].Changed = p.Size, p.Changed
		}
		opts.Logger.Info("vulnerability source", "source", res[i].Name, "status", res[i].Status, "bytes", res[i].Bytes,
			"records", res[i].Records, "error", res[i].Error)
		if res[i].Status == UpdateFailed {
			failed = append(failed, fmt.Sprintf("%s: %s", res[i].Name, res[i].Error))
		}
	}
	if err := writeDownloadState(dl, state); err != nil {
		return res, fmt.Errorf("update: %w", err)
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("update: %d of %d sources failed (they keep their previous records): %s",
			len(failed), len(srcs), strings.Join(failed, "; "))
	}
	return res, nil
}

func (o UpdateOptions) withDefaults() UpdateOptions {
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	if o.UserAgent == "" {
		o.UserAgent = "bulwark"
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 4 << 30
	}
	if o.Parallel <= 0 {
		o.Parallel = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// fetchedFile is a new download, in its own temporary directory.
type fetchedFile struct {
	tmpDir, path       string
	sum                string
	size               int64
	etag, lastModified string
}

// fetch downloads s unless the server says it has not changed since prev
// (nil, nil).
func fetch(ctx context.Context, dl string, s Source, prev *downloadState, opts UpdateOptions) (*fetchedFile, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", opts.UserAgent)
	// The bytes as stored (a .gz stays compressed: the import reads it).
	req.Header.Set("Accept-Encoding", "identity")
	if prev != nil {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
	}
	resp, err := opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", redactErr(err, s.URL))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("download: %s answered %s", redactURL(s.URL), resp.Status)
	case resp.ContentLength > opts.MaxBytes:
		return nil, fmt.Errorf("download: over the limit of %d bytes (%d announced)", opts.MaxBytes, resp.ContentLength)
	}
	tmp, err := os.MkdirTemp(dl, "."+s.Name+"-")
	if err != nil {
		return nil, err
	}
	f := &fetchedFile{tmpDir: tmp, path: filepath.Join(tmp, downloadName(resp)),
		etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
	var body io.Reader = resp.Body
	if opts.Progress != nil {
		body = &progressReader{r: body, f: opts.Progress}
	}
	if err := f.write(body, opts.MaxBytes); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("download: %w", err)
	}
	return f, nil
}

// progressReader reports what is read through it.
type progressReader struct {
	r io.Reader
	f func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.f(int64(n))
	}
	return n, err
}

// write streams body to f.path, at most max bytes, hashing it.
func (f *fetchedFile) write(body io.Reader, max int64) error {
	out, err := os.OpenFile(f.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(body, max+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("over the limit of %d bytes", max)
	}
	f.sum, f.size = hex.EncodeToString(h.Sum(nil)), n
	return nil
}

// downloadName is the file name to keep a download under: the last
// element of the (final) URL's path, which the import's format detection
// reads (".zip", ".json", ".csv.gz"), cleaned of anything but a plain
// name.
func downloadName(resp *http.Response) string {
	name := path.Base(resp.Request.URL.Path)
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
	if strings.Trim(clean, "._") == "" || len(clean) > 128 {
		return "download"
	}
	return clean
}

// keepDownload moves a new download into dir/downloads/NAME, replacing the
// previous one.
func keepDownload(dl, name string, f *fetchedFile) error {
	dst := filepath.Join(dl, name)
	old := filepath.Join(dl, "."+name+".old")
	os.RemoveAll(old)
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Rename(f.tmpDir, dst); err != nil {
		os.Rename(old, dst)
		return err
	}
	f.tmpDir, f.path = dst, filepath.Join(dst, filepath.Base(f.path))
	return os.RemoveAll(old)
}

func readDownloadState(dl string) (map[string]*downloadState, error) {
	b, err := os.ReadFile(filepath.Join(dl, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]*downloadState{}, nil
	}
	if err != nil {
		return nil, err
	}
	state := map[string]*downloadState{}
	if err := json.Unmarshal(b, &state); err != nil {
		// Only conditional requests are lost: every source downloads again.
		return map[string]*downloadState{}, nil
	}
	for k, v := range state {
		if v == nil || checkSourceName(k) != nil {
			delete(state, k)
		}
	}
	return state, nil
}

func writeDownloadState(dl string, state map[string]*downloadState) error {
	b, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dl, stateFile), append(b, '\n'), 0o644)
}

// redactURL drops a URL's password (results and logs name the source).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return truncate(s)
	}
	return u.Redacted()
}

// redactErr replaces the URL in an error (net/http quotes it) by its
// redacted form.
func redactErr(err error, raw string) error {
	if r := redactURL(raw); r != raw {
		return errors.New(strings.ReplaceAll(err.Error(), raw, r))
	}
	return err
}
