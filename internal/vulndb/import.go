package vulndb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Format forces the input format (one of the Format constants);
	// empty detects it from each input's names and content.
	Format string
	// Name overrides the source name, which otherwise comes from the
	// format or, for OSV, from the records' ID prefix ("GO-" → "go-vulndb").
	// Only valid with a single input.
	Name string
	// Logger receives one warning per skipped record. Nil discards them
	// (they are still counted and the first few kept in SourceStatus.Errors).
	Logger *slog.Logger
	Limits Limits
	// Now stamps SourceStatus.Imported and the index; nil is time.Now.
	Now func() time.Time
}

// maxKeptErrors bounds SourceStatus.Errors.
const maxKeptErrors = 20

// Import reads each path (a directory, a zip, or a single file) as one
// source, stores its normalised records under dir, replacing an earlier
// import of the same source, and rebuilds the index. Inputs are all parsed
// before anything is written, so a failing input leaves the database as it
// was. Malformed records are skipped and counted; an input in which nothing
// parses is an error.
func Import(ctx context.Context, dir string, paths []string, opts ImportOptions) ([]SourceStatus, error) {
	if len(paths) == 0 {
		return nil, errors.New("import: no input given")
	}
	if opts.Name != "" && len(paths) > 1 {
		return nil, errors.New("import: a source name can only be given for a single input")
	}
	if opts.Name != "" {
		if err := checkSourceName(opts.Name); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var srcs []*sourceData
	seen := map[string]string{}
	for _, p := range paths {
		s, err := importInput(ctx, p, opts)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", p, err)
		}
		if prev, ok := seen[s.Status.Name]; ok {
			return nil, fmt.Errorf("import: %s and %s are both source %q; import them separately or name them", prev, p, s.Status.Name)
		}
		seen[s.Status.Name] = p
		srcs = append(srcs, s)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []SourceStatus
	for _, s := range srcs {
		if err := writeSource(dir, s); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		out = append(out, s.Status)
	}
	if err := rebuild(ctx, dir, opts.Now()); err != nil {
		return nil, err
	}
	return out, nil
}

// Rebuild recompiles the index of dir from its stored sources, for
// instance after an upgrade changed the index format.
func Rebuild(ctx context.Context, dir string) error {
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return err
	}
	defer unlock()
	return rebuild(ctx, dir, time.Now())
}

func rebuild(ctx context.Context, dir string, now time.Time) error {
	srcs, err := readSources(dir)
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	if len(srcs) == 0 {
		return fmt.Errorf("rebuild index: %w: no sources in %s", ErrNoDatabase, dir)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	img, err := buildIndex(srcs, now)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, indexFile), func(w io.Writer) error {
		_, err := w.Write(img)
		return err
	})
}

// skips counts skipped records and keeps the first errors.
type skips struct {
	log    *slog.Logger
	source string
	n      int
	errs   []string
}

func (s *skips) add(file string, err error) { s.addN(file, 1, err) }

// addN counts n skipped records behind one error.
func (s *skips) addN(file string, n int, err error) {
	s.n += n
	msg := fmt.Sprintf("%s: %v", file, err)
	s.log.Warn("skipped malformed record", "input", s.source, "file", file, "error", err)
	if len(s.errs) < maxKeptErrors {
		s.errs = append(s.errs, msg)
	} else if len(s.errs) == maxKeptErrors {
		s.errs = append(s.errs, "… more errors not kept")
	}
}

// parallel runs fn over n items on up to GOMAXPROCS workers and returns the
// results in order.
func parallel[T any](ctx context.Context, n int, fn func(i int) T) ([]T, error) {
	out := make([]T, n)
	workers := min(runtime.GOMAXPROCS(0), 8, max(n, 1))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = fn(i)
			}
		}()
	}
	var err error
	for i := 0; i < n; i++ {
		if err = ctx.Err(); err != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return out, err
}

func importInput(ctx context.Context, p string, opts ImportOptions) (*sourceData, error) {
	in, err := listInput(ctx, p, opts.Limits)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	d, err := detect(in, opts.Format)
	if err != nil {
		return nil, err
	}
	origin, _ := filepath.Abs(p)
	s := &sourceData{Status: SourceStatus{Origin: origin, Format: d.format, Imported: opts.Now().UTC()}}
	sk := &skips{log: opts.Logger, source: p}
	switch d.format {
	case FormatOSV:
		err = importOSV(ctx, in, d.files, s, sk)
	case FormatCVE5:
		err = importCVE5(ctx, in, d.files, s, sk)
	case FormatNodeJSWG:
		err = importNodeJS(ctx, in, d.files, s, sk)
	case FormatAlpine:
		err = importAlpine(in, d.files, s, sk)
	case FormatKEV:
		err = importKEV(in, d.files, s, sk)
	case FormatEPSS:
		err = importEPSS(in, d.files, s, sk)
	}
	if err != nil {
		return nil, err
	}
	s.Status.Skipped, s.Status.Errors = sk.n, sk.errs
	if s.Status.Records == 0 {
		if sk.n > 0 {
			return nil, fmt.Errorf("no %s record parsed; %d skipped, first: %s", d.format, sk.n, sk.errs[0])
		}
		if s.Status.Withdrawn == 0 {
			return nil, fmt.Errorf("no %s record found", d.format)
		}
	}
	if opts.Name != "" {
		s.Status.Name = opts.Name
	}
	if s.Status.Name == "" {
		s.Status.Name = d.format
	}
	return s, nil
}

// parsed is one file's parse outcome, made in parallel and used in order.
type parsed[T any] struct {
	val       T
	withdrawn bool
	err       error
}

// importEach reads and parses files in parallel, then hands every usable
// record to use, in file order, so the output does not depend on
// scheduling. Every per-file format sorts its outcomes the same way here,
// so none can forget a case: a file that is not a record is ignored, one
// too large stops the import (the limit protects the whole run), one that
// failed to parse is counted as skipped, and a withdrawn record is counted.
func importEach[T any](ctx context.Context, in *inputSet, files []inputFile, s *sourceData, sk *skips,
	parse func(f inputFile, data []byte) (T, bool, error), use func(T)) error {
	res, err := parallel(ctx, len(files), func(i int) parsed[T] {
		data, err := in.read(files[i])
		if err != nil {
			return parsed[T]{err: err}
		}
		v, w, err := parse(files[i], data)
		return parsed[T]{v, w, err}
	})
	if err != nil {
		return err
	}
	for i, r := range res {
		switch {
		case errors.Is(r.err, errNotRecord):
			continue
		case errors.Is(r.err, errInputTooLarge):
			return r.err
		case r.err != nil:
			sk.add(files[i].rel, r.err)
			continue
		case r.withdrawn:
			s.Status.Withdrawn++
			continue
		}
		use(r.val)
	}
	return nil
}

func importOSV(ctx context.Context, in *inputSet, files []inputFile, s *sourceData, sk *skips) error {
	byID := map[string]int{}
	prefixes := map[string]int{}
	err := importEach(ctx, in, files, s, sk, func(f inputFile, data []byte) (*record, bool, error) {
		ext := strings.ToLower(filepath.Ext(f.rel))
		return parseOSV(data, ext == ".yaml" || ext == ".yml", "")
	}, func(rec *record) {
		if j, ok := byID[rec.ID]; ok {
			// The same record twice (AlmaLinux keeps copies of some
			// advisories under two releases): keep the newer text and
			// every affected package of both.
			s.Records[j] = mergeSameID(s.Records[j], rec)
			return
		}
		byID[rec.ID] = len(s.Records)
		s.Records = append(s.Records, rec)
		if rec.Modified.After(s.Status.Newest) {
			s.Status.Newest = rec.Modified
		}
		prefix, _, _ := strings.Cut(rec.ID, "-")
		prefixes[prefix]++
	})
	if err != nil {
		return err
	}
	s.Status.Records = len(s.Records)
	s.Status.Name = osvSourceName(prefixes)
	return nil
}

// osvSourceName names an OSV source after the database most of its
// records come from.
func osvSourceName(prefixes map[string]int) string {
	best, n := "", 0
	for p, c := range prefixes {
		if c > n || (c == n && p < best) {
			best, n = p, c
		}
	}
	switch best {
	case "":
		return FormatOSV
	case "GO":
		return "go-vulndb"
	case "RUSTSEC":
		return "rustsec"
	case "PYSEC":
		return "pypa"
	case "ALSA", "ALBA", "ALEA":
		return "almalinux"
	case "GHSA":
		return "ghsa"
	case "DSA", "DLA", "DTSA", "DEBIAN":
		return "debian"
	case "USN", "UBUNTU", "LSN":
		return "ubuntu"
	}
	name := strings.ToLower(best)
	if checkSourceName(name) != nil {
		return FormatOSV
	}
	return name
}

// cveEntry is what enrichment keeps of one CVE 5 record.
type cveEntry struct {
	id       string
	info     cveInfo
	modified time.Time
}

func importCVE5(ctx context.Context, in *inputSet, files []inputFile, s *sourceData, sk *skips) error {
	s.CVE = map[string]cveInfo{}
	err := importEach(ctx, in, files, s, sk, func(_ inputFile, data []byte) (cveEntry, bool, error) {
		id, info, mod, w, err := parseCVE5(data)
		return cveEntry{id, info, mod}, w, err
	}, func(r cveEntry) {
		s.Status.Records++
		if r.modified.After(s.Status.Newest) {
			s.Status.Newest = r.modified
		}
		// Only what enrichment uses is kept: CVSS, and the description
		// for advisories that have none (Alpine's, whose lines are bare CVE IDs).
		s.CVE[r.id] = r.info
	})
	if err != nil {
		return err
	}
	s.Status.Name = FormatCVE5
	return nil
}

func importNodeJS(ctx context.Context, in *inputSet, files []inputFile, s *sourceData, sk *skips) error {
	err := importEach(ctx, in, files, s, sk, func(_ inputFile, data []byte) (*record, bool, error) {
		r, err := parseNodeJSWG(data)
		return r, false, err
	}, func(rec *record) {
		s.Records = append(s.Records, rec)
		if rec.Modified.After(s.Status.Newest) {
			s.Status.Newest = rec.Modified
		}
	})
	if err != nil {
		return err
	}
	sort.Slice(s.Records, func(i, j int) bool { return s.Records[i].ID < s.Records[j].ID })
	s.Status.Records = len(s.Records)
	s.Status.Name = FormatNodeJSWG
	return nil
}

// readEach reads files one by one (their outputs are merged, so order
// matters) and hands each to parse; a file that cannot be read or parsed
// is counted as skipped, except one too large, which stops the import.
func readEach(in *inputSet, files []inputFile, sk *skips, parse func(f inputFile, data []byte) error) error {
	for _, f := range files {
		data, err := in.read(f)
		if errors.Is(err, errInputTooLarge) {
			return err
		}
		if err == nil {
			err = parse(f, data)
		}
		if err != nil {
			sk.add(f.rel, err)
		}
	}
	return nil
}

func importAlpine(in *inputSet, files []inputFile, s *sourceData, sk *skips) error {
	var fixes []alpineFix
	err := readEach(in, files, sk, func(f inputFile, data []byte) error {
		fx, placeholders, err := parseAlpineSecdb(data)
		if err != nil {
			return err
		}
		if placeholders > 0 {
			sk.addN(f.rel, placeholders, fmt.Errorf("%d fix lines without a usable ID (such as CVE-????-?????)", placeholders))
		}
		fixes = append(fixes, fx...)
		return nil
	})
	if err != nil {
		return err
	}
	s.Records = alpineRecords(fixes)
	s.Status.Records = len(s.Records)
	s.Status.Name = FormatAlpine
	return nil
}

func importKEV(in *inputSet, files []inputFile, s *sourceData, sk *skips) error {
	s.KEV = map[string]KEV{}
	err := readEach(in, files, sk, func(f inputFile, data []byte) error {
		kev, released, skipped, err := parseKEV(data)
		if err != nil {
			return err
		}
		if skipped > 0 {
			sk.addN(f.rel, skipped, fmt.Errorf("%d entries without a valid cveID", skipped))
		}
		for k, v := range kev {
			s.KEV[k] = v
		}
		if released.After(s.Status.Newest) {
			s.Status.Newest = released
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.Status.Records = len(s.KEV)
	s.Status.Name = FormatKEV
	return nil
}

func importEPSS(in *inputSet, files []inputFile, s *sourceData, sk *skips) error {
	s.EPSS = map[string]float64{}
	for _, f := range files {
		if err := func() error {
			rc, err := f.open()
			if err != nil {
				return err
			}
			defer rc.Close()
			var r io.Reader = io.LimitReader(rc, in.limits.MaxTotalBytes)
			head := make([]byte, 2)
			n, _ := io.ReadFull(r, head)
			r = io.MultiReader(bytes.NewReader(head[:n]), r)
			if n == 2 && head[0] == 0x1f && head[1] == 0x8b {
				zr, err := gzip.NewReader(r)
				if err != nil {
					return err
				}
				defer zr.Close()
				r = io.LimitReader(zr, in.limits.MaxTotalBytes)
			}
			scores, date, skipped, err := parseEPSS(r)
			if err != nil {
				return err
			}
			if skipped > 0 {
				sk.addN(f.rel, skipped, fmt.Errorf("%d lines without a CVE and a score in [0,1]", skipped))
			}
			for k, v := range scores {
				s.EPSS[k] = v
			}
			if date.After(s.Status.Newest) {
				s.Status.Newest = date
			}
			return nil
		}(); err != nil {
			sk.add(f.rel, err)
		}
	}
	s.Status.Records = len(s.EPSS)
	s.Status.Name = FormatEPSS
	return nil
}

func mergeSameID(a, b *record) *record {
	if b.Modified.After(a.Modified) {
		a, b = b, a
	}
	out := *a
	for _, af := range b.Affected {
		dup := false
		for _, x := range out.Affected {
			if x.Ecosystem == af.Ecosystem && x.Name == af.Name {
				dup = true
				break
			}
		}
		if !dup {
			out.Affected = append(out.Affected, af)
		}
	}
	return &out
}
