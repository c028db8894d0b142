package vulndb

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-security/bulwark/internal/vulndb/vulndbtest"
)

// feedServer is a real HTTPS server (net/http over TLS on loopback) that
// serves feeds the way the public buckets do: with an ETag and
// Last-Modified, answering conditional requests with 304
// (http.ServeContent). A feed with noConditional always answers 200, like
// a mirror without caching headers.
type feedServer struct {
	srv *httptest.Server

	mu    sync.Mutex
	feeds map[string]*feed
	seen  []string // "METHOD path status conditional"
}

type feed struct {
	body          []byte
	status        int // 0: serve body
	noConditional bool
	modified      time.Time
}

func newFeedServer(t *testing.T) *feedServer {
	t.Helper()
	fs := &feedServer{feeds: map[string]*feed{}}
	fs.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		f := fs.feeds[r.URL.Path]
		var body []byte
		var st int
		var noCond bool
		var mod time.Time
		if f != nil {
			body, st, noCond, mod = f.body, f.status, f.noConditional, f.modified
		}
		fs.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		switch {
		case f == nil:
			http.NotFound(rec, r)
		case st != 0:
			http.Error(rec, "feed broken", st)
		case noCond:
			rec.Write(body)
		default:
			rec.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha(body)))
			http.ServeContent(rec, r, "", mod, bytes.NewReader(body))
		}
		cond := r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != ""
		fs.mu.Lock()
		fs.seen = append(fs.seen, fmt.Sprintf("%s %s %d %v", r.Method, r.URL.Path, rec.status, cond))
		fs.mu.Unlock()
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

func sha(b []byte) []byte {
	h := make([]byte, 0, 8)
	var x uint64 = 1469598103934665603
	for _, c := range b {
		x = (x ^ uint64(c)) * 1099511628211
	}
	return fmt.Appendf(h, "%016x", x)
}

func (fs *feedServer) set(path string, f *feed) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.modified.IsZero() {
		f.modified = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	}
	fs.feeds[path] = f
}

func (fs *feedServer) requests() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := fs.seen
	fs.seen = nil
	return out
}

func (fs *feedServer) opts() UpdateOptions {
	return UpdateOptions{Client: fs.srv.Client()}
}

// osvZip zips the given testdata files as an OSV export does.
func osvZip(t *testing.T, files ...string) []byte {
	t.Helper()
	for i := range files {
		files[i] = filepath.Join("testdata", files[i])
	}
	return vulndbtest.OSVZip(t, files...)
}

func gzipped(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func readTestdata(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// statuses is "name=status" per result.
func statuses(res []UpdateResult) string {
	var s []string
	for _, r := range res {
		s = append(s, r.Name+"="+r.Status)
	}
	return strings.Join(s, " ")
}

func sourceRecords(t *testing.T, dir string) map[string]int {
	t.Helper()
	db, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int{}
	for _, s := range db.Status().Sources {
		out[s.Name] = s.Records
	}
	return out
}

// TestUpdate: the first update downloads and imports every source; the
// second sends conditional requests, gets 304s and rewrites nothing; a
// changed feed is downloaded and imported alone.
func TestUpdate(t *testing.T) {
	fs := newFeedServer(t)
	fs.set("/osv/Go/all.zip", &feed{body: osvZip(t, "go-vulndb/GO-2020-0009.json", "go-vulndb/GO-2022-0535.json")})
	fs.set("/kev/known_exploited_vulnerabilities.json", &feed{body: readTestdata(t, "cisa-kev-subset.json")})
	fs.set("/epss/epss_scores-current.csv.gz", &feed{body: gzipped(t, "epss/epss_scores-sample.csv")})
	srcs := []Source{
		{Name: "osv-go", URL: fs.srv.URL + "/osv/Go/all.zip", Format: FormatOSV},
		{Name: "cisa-kev", URL: fs.srv.URL + "/kev/known_exploited_vulnerabilities.json"},
		{Name: "epss", URL: fs.srv.URL + "/epss/epss_scores-current.csv.gz"},
	}
	dir := t.TempDir()
	ctx := context.Background()

	var progressed atomic.Int64
	opts := fs.opts()
	opts.Progress = func(n int64) { progressed.Add(n) }
	res, err := Update(ctx, dir, srcs, opts)
	if err != nil {
		t.Fatalf("first update: %v", err)
	}
	if got := statuses(res); got != "osv-go=updated cisa-kev=updated epss=updated" {
		t.Fatalf("first update: %s", got)
	}
	recs := sourceRecords(t, dir)
	if recs["osv-go"] != 2 || recs["cisa-kev"] == 0 || recs["epss"] == 0 {
		t.Fatalf("records after the first update: %v", recs)
	}
	if res[0].Records != 2 || res[0].Bytes == 0 || res[0].Changed.IsZero() {
		t.Errorf("osv-go result: %+v", res[0])
	}
	if want := res[0].Bytes + res[1].Bytes + res[2].Bytes; progressed.Load() != want {
		t.Errorf("progress reported %d bytes, downloaded %d", progressed.Load(), want)
	}
	fs.requests()
	index := filepath.Join(dir, indexFile)
	before, err := os.Stat(index)
	if err != nil {
		t.Fatal(err)
	}

	res, err = Update(ctx, dir, srcs, fs.opts())
	if err != nil || statuses(res) != "osv-go=unchanged cisa-kev=unchanged epss=unchanged" {
		t.Fatalf("second update: %s, %v", statuses(res), err)
	}
	for _, r := range fs.requests() {
		if !strings.HasSuffix(r, " 304 true") {
			t.Errorf("second update request %q: want a conditional request answered 304", r)
		}
	}
	after, _ := os.Stat(index)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("index rewritten with nothing changed")
	}
	if res[0].Bytes == 0 || res[0].Records != 0 {
		t.Errorf("unchanged result: %+v", res[0])
	}

	// One feed changes.
	fs.set("/osv/Go/all.zip", &feed{body: osvZip(t, "go-vulndb/GO-2020-0009.json", "go-vulndb/GO-2022-0535.json",
		"go-vulndb/GO-2023-2102.json"), modified: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	res, err = Update(ctx, dir, srcs, fs.opts())
	if err != nil || statuses(res) != "osv-go=updated cisa-kev=unchanged epss=unchanged" {
		t.Fatalf("third update: %s, %v", statuses(res), err)
	}
	if recs := sourceRecords(t, dir); recs["osv-go"] != 3 {
		t.Errorf("records after the change: %v", recs)
	}
	// Only the last good download is kept, no temporary directory.
	entries, _ := os.ReadDir(filepath.Join(dir, downloadsDir))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != ".lock cisa-kev epss osv-go state.json" {
		t.Errorf("downloads: %s", got)
	}
}

// TestUpdateSameBytes: a mirror that ignores conditional requests costs a
// download but no import when the bytes are the same.
func TestUpdateSameBytes(t *testing.T) {
	fs := newFeedServer(t)
	fs.set("/kev.json", &feed{body: readTestdata(t, "cisa-kev-subset.json"), noConditional: true})
	srcs := []Source{{Name: "cisa-kev", URL: fs.srv.URL + "/kev.json"}}
	dir := t.TempDir()
	if res, err := Update(context.Background(), dir, srcs, fs.opts()); err != nil || statuses(res) != "cisa-kev=updated" {
		t.Fatalf("first: %s, %v", statuses(res), err)
	}
	before, _ := os.Stat(filepath.Join(dir, indexFile))
	if res, err := Update(context.Background(), dir, srcs, fs.opts()); err != nil || statuses(res) != "cisa-kev=unchanged" {
		t.Fatalf("second: %s, %v", statuses(res), err)
	}
	after, _ := os.Stat(filepath.Join(dir, indexFile))
	if !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("index rewritten for the same bytes")
	}
}

// TestUpdateFailures: a feed answering 500, a feed serving garbage, a
// feed over the size limit and an unreachable one fail alone: the others
// are updated, the failed sources keep their previous download and
// records, nothing temporary is left, and the error names each.
func TestUpdateFailures(t *testing.T) {
	fs := newFeedServer(t)
	good := map[string][]byte{
		"/a.zip":   osvZip(t, "go-vulndb/GO-2020-0009.json"),
		"/b.json":  readTestdata(t, "cisa-kev-subset.json"),
		"/c.zip":   osvZip(t, "go-vulndb/GO-2022-0535.json", "go-vulndb/GO-2022-0617.json"),
		"/d.zip":   osvZip(t, "go-vulndb/GO-2022-1059.json"),
		"/new.zip": osvZip(t, "go-vulndb/GO-2023-1574.json"),
	}
	for p, b := range good {
		fs.set(p, &feed{body: b})
	}
	srcs := []Source{
		{Name: "a", URL: fs.srv.URL + "/a.zip"},
		{Name: "b", URL: fs.srv.URL + "/b.json"},
		{Name: "c", URL: fs.srv.URL + "/c.zip"},
		{Name: "d", URL: fs.srv.URL + "/d.zip"},
		{Name: "new", URL: fs.srv.URL + "/new.zip"},
	}
	dir := t.TempDir()
	ctx := context.Background()
	opts := fs.opts()
	opts.MaxBytes = 64 << 10
	if _, err := Update(ctx, dir, srcs, opts); err != nil {
		t.Fatal(err)
	}
	want := sourceRecords(t, dir)

	later := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	fs.set("/a.zip", &feed{status: http.StatusInternalServerError})
	fs.set("/b.json", &feed{body: []byte(`{"not": "a catalogue"`), modified: later})
	// Streamed (chunked, no length given): the limit stops the copy.
	fs.set("/c.zip", &feed{body: bytes.Repeat([]byte("x"), 100<<10), noConditional: true})
	srcs[3].URL = "https://127.0.0.1:1/d.zip" // nothing listens on port 1
	fs.set("/new.zip", &feed{body: osvZip(t, "go-vulndb/GO-2023-1574.json", "go-vulndb/GO-2023-2102.json"), modified: later})

	res, err := Update(ctx, dir, srcs, opts)
	if got := statuses(res); got != "a=failed b=failed c=failed d=failed new=updated" {
		t.Fatalf("statuses: %s", got)
	}
	if err == nil {
		t.Fatal("no error with four sources failed")
	}
	for _, s := range []string{"4 of 5 sources failed", "a: download: ", "500 Internal Server Error", "b: ",
		"c: download: over the limit of 65536", "d: download: "} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	got := sourceRecords(t, dir)
	for _, n := range []string{"a", "b", "c", "d"} {
		if got[n] != want[n] || got[n] == 0 {
			t.Errorf("source %s: %d records, had %d", n, got[n], want[n])
		}
	}
	if got["new"] != 2 {
		t.Errorf("source new: %d records, want 2", got["new"])
	}
	entries, _ := os.ReadDir(filepath.Join(dir, downloadsDir))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ".lock" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// The broken feed is fixed: downloaded and imported again.
	fs.set("/a.zip", &feed{body: osvZip(t, "go-vulndb/GO-2020-0009.json", "go-vulndb/GO-2023-2102.json"), modified: later})
	res, _ = Update(ctx, dir, srcs[:1], opts)
	if statuses(res) != "a=updated" || sourceRecords(t, dir)["a"] != 2 {
		t.Errorf("after the fix: %s, %v", statuses(res), sourceRecords(t, dir))
	}
}

// TestUpdateRedactsPassword: a mirror's password is not in results, logs
// or errors.
func TestUpdateRedactsPassword(t *testing.T) {
	fs := newFeedServer(t)
	u := strings.Replace(fs.srv.URL, "https://", "https://bulwark:hunter2@", 1)
	res, err := Update(context.Background(), t.TempDir(), []Source{{Name: "m", URL: u + "/missing.zip"}}, fs.opts())
	if err == nil || len(res) != 1 {
		t.Fatalf("update: %v, %v", res, err)
	}
	for _, s := range []string{err.Error(), res[0].URL, res[0].Error} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password shown: %s", s)
		}
	}
}

func TestDownloadName(t *testing.T) {
	for in, want := range map[string]string{
		"/osv/Go/all.zip": "all.zip",
		"/feeds/known_exploited_vulnerabilities.json": "known_exploited_vulnerabilities.json",
		"/x/..":                        "download",
		"/":                            "download",
		"/a/%2e%2e%2fetc%2fpasswd":     "passwd",
		"/a/b c;rm -rf.zip":            "b_c_rm_-rf.zip",
		"/" + strings.Repeat("a", 300): "download",
	} {
		r, err := http.NewRequest(http.MethodGet, "https://example.com"+in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := downloadName(&http.Response{Request: r}); got != want {
			t.Errorf("downloadName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSources(t *testing.T) {
	good := `sources:
  - name: osv-go
    url: https://mirror.example.com/osv/Go/all.zip
    format: osv
  - name: kev
    url: http://10.0.0.1/kev.json
`
	srcs, err := ParseSources([]byte(good))
	if err != nil || len(srcs) != 2 || srcs[0].Format != FormatOSV || srcs[1].Name != "kev" {
		t.Fatalf("ParseSources: %+v, %v", srcs, err)
	}
	for in, want := range map[string]string{
		"":            "empty",
		"sources: []": "no sources",
		"sources:\n  - name: a\n    url: https://x/a\n    mirror: y\n":                     "field mirror not found",
		"sources:\n  - name: a\n    url: https://x/a\n  - name: a\n    url: https://x/b\n": `"a": listed twice`,
		"sources:\n  - name: A B\n    url: https://x/a\n":                                  "bad source name",
		"sources:\n  - name: a\n    url: file:///etc/passwd\n":                             "want an http(s) URL",
		"sources:\n  - name: a\n    url: https:///nohost\n":                                "want an http(s) URL",
		"sources:\n  - name: a\n    url: https://x/a\n    format: rpm\n":                   `unknown format "rpm"`,
		"sources: {a: 1}": "cannot unmarshal",
		"- a\n- b":        "cannot unmarshal",
	} {
		_, err := ParseSources([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSources(%q): %v, want %q", in, err, want)
		}
	}
	if err := CheckSources(DefaultSources()); err != nil {
		t.Errorf("default sources: %v", err)
	}
}

func FuzzParseSources(f *testing.F) {
	f.Add([]byte("sources:\n  - name: osv-go\n    url: https://mirror.example.com/all.zip\n"))
	f.Add([]byte("sources: [{name: a, url: 'http://x/a', format: epss}]"))
	f.Add([]byte("{\"sources\": [{\"name\": \"a\", \"url\": \"https://h/p\"}]}"))
	f.Add([]byte("sources: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		srcs, err := ParseSources(data)
		if err != nil {
			return
		}
		if len(srcs) == 0 || CheckSources(srcs) != nil {
			t.Fatalf("accepted an invalid list: %+v", srcs)
		}
	})
}
