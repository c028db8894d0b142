package vulndb

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
)

var (
	nodejsLayout = regexp.MustCompile(`(^|/)vuln/npm/\d+\.json$`)
	alpineLayout = regexp.MustCompile(`(^|/)v\d+\.\d+/[^/]+\.ya?ml$`)
	// The golang.org/x/vulndb module zip holds OSV records under data/osv,
	// next to Go report YAML, CVE 5 copies and test fixtures that are not.
	goVulndbLayout = regexp.MustCompile(`(^|/)data/osv/GO-\d{4}-\d+\.json$`)
)

// detected is the outcome of format detection for one input.
type detected struct {
	format string
	files  []inputFile
}

func isRecordExt(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

func isCSV(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".csv") || strings.HasSuffix(n, ".csv.gz")
}

// detect tells an input's format from its layout (file names) and, when
// names do not tell, from the first bytes of its first candidate file.
// override, when set, wins; a layout's file filter is kept when it belongs
// to the same format.
func detect(in *inputSet, override string) (detected, error) {
	if override != "" && !slices.Contains(formats, override) {
		return detected{}, fmt.Errorf("unknown format %q (want one of %s)", override, strings.Join(formats, ", "))
	}
	filter := func(pred func(string) bool) []inputFile {
		var out []inputFile
		for _, f := range in.files {
			if pred(f.rel) {
				out = append(out, f)
			}
		}
		return out
	}
	var d detected
	switch {
	case in.single:
		d = detected{files: in.files}
		if override != "" {
			d.format = override
			break
		}
		head, err := sniff(in.files[0])
		if err != nil {
			return d, err
		}
		d.format = formatOfHead(head, in.files[0].rel)
	case len(filter(nodejsLayout.MatchString)) > 0:
		d = detected{format: FormatNodeJSWG, files: filter(nodejsLayout.MatchString)}
	case len(filter(goVulndbLayout.MatchString)) > 0:
		d = detected{format: FormatOSV, files: filter(func(r string) bool {
			return strings.Contains("/"+r, "/data/osv/") && strings.HasSuffix(r, ".json")
		})}
	case len(filter(alpineLayout.MatchString)) > 0 && sniffIs(filter(alpineLayout.MatchString)[0], FormatAlpine):
		d = detected{format: FormatAlpine, files: filter(alpineLayout.MatchString)}
	default:
		cands := filter(isRecordExt)
		if len(cands) == 0 {
			if csvs := filter(isCSV); len(csvs) > 0 {
				d = detected{format: FormatEPSS, files: csvs}
				break
			}
			return d, fmt.Errorf("input %s holds no JSON, YAML or CSV files", in.path)
		}
		head, err := sniff(cands[0])
		if err != nil {
			return d, err
		}
		d = detected{format: formatOfHead(head, cands[0].rel), files: cands}
	}
	if override != "" && override != d.format {
		d.format = override
		switch override {
		case FormatEPSS:
			d.files = filter(isCSV)
		default:
			d.files = filter(isRecordExt)
		}
		if in.single {
			d.files = in.files
		}
	}
	if len(d.files) == 0 {
		return d, fmt.Errorf("input %s holds no %s files", in.path, d.format)
	}
	return d, nil
}

// sniff reads the first KiB of f (gunzipped when it is gzip).
func sniff(f inputFile) ([]byte, error) {
	rc, err := f.open()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.rel, err)
	}
	defer rc.Close()
	head := make([]byte, 1024)
	n, err := io.ReadFull(rc, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", f.rel, err)
	}
	head = head[:n]
	if bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(io.MultiReader(bytes.NewReader(head), rc))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.rel, err)
		}
		head = make([]byte, 1024)
		n, _ = io.ReadFull(zr, head)
		head = head[:n]
	}
	return head, nil
}

func sniffIs(f inputFile, format string) bool {
	head, err := sniff(f)
	return err == nil && formatOfHead(head, f.rel) == format
}

func formatOfHead(head []byte, name string) string {
	h := bytes.TrimSpace(head)
	switch {
	case bytes.HasPrefix(h, []byte("#model_version")) || bytes.HasPrefix(h, []byte("cve,epss")):
		return FormatEPSS
	case bytes.Contains(h, []byte(`"catalogVersion"`)) || bytes.Contains(h, []byte("Known Exploited Vulnerabilities")):
		return FormatKEV
	case bytes.Contains(h, []byte(`"CVE_RECORD"`)):
		return FormatCVE5
	case bytes.Contains(h, []byte(`"module_name"`)) && bytes.Contains(h, []byte(`"vulnerable_versions"`)):
		return FormatNodeJSWG
	case bytes.Contains(h, []byte("distroversion:")) || bytes.Contains(h, []byte("secfixes:")):
		return FormatAlpine
	case isCSV(name):
		return FormatEPSS
	}
	return FormatOSV
}
