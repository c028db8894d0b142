package osrelease

import (
	"bytes"
	"context"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// Name is the extractor's stable name.
const Name = "os/osrelease"

// MaxFileSize bounds the release files read. Real ones are well under 1 KiB;
// a larger file is not a release file and is reported, not parsed.
const MaxFileSize = 64 << 10

// Paths of the files the extractor reads, relative to the scanned root.
const (
	PathOSRelease    = "etc/os-release"
	PathUsrOSRelease = "usr/lib/os-release"
	PathAlpine       = "etc/alpine-release"
	PathDebian       = "etc/debian_version"
	PathRedHat       = "etc/redhat-release"
	PathAlmaLinux    = "etc/almalinux-release"
	PathRocky        = "etc/rocky-release"
	PathCentOS       = "etc/centos-release"
)

// Extractor detects the operating system from release files.
type Extractor struct{}

// New returns the OS release extractor.
func New() *Extractor { return &Extractor{} }

// Name implements inventory.Extractor.
func (*Extractor) Name() string { return Name }

// Version implements inventory.Extractor.
func (*Extractor) Version() int { return 1 }

// Required accepts the release files by exact path.
func (*Extractor) Required(path string, _ inventory.FileInfo) bool {
	switch path {
	case PathOSRelease, PathUsrOSRelease, PathAlpine, PathDebian,
		PathRedHat, PathAlmaLinux, PathRocky, PathCentOS:
		return true
	}
	return false
}

// Extract implements inventory.Extractor. A file that holds nothing
// recognisable yields an empty Output; a file larger than MaxFileSize is an
// error.
func (*Extractor) Extract(ctx context.Context, in *inventory.Input) (inventory.Output, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Output{}, err
	}
	data, err := inventory.ReadAll(in, MaxFileSize)
	if err != nil {
		return inventory.Output{}, err
	}
	var os *inventory.OS
	switch in.Path {
	case PathOSRelease, PathUsrOSRelease:
		os = fromOSRelease(Parse(data))
	case PathAlpine:
		os = fromAlpineRelease(data)
	case PathDebian:
		os = fromDebianVersion(data)
	default:
		os = fromRedHatRelease(data)
	}
	if os == nil {
		return inventory.Output{}, nil
	}
	os.Location = in.Path
	return inventory.Output{OS: os}, nil
}

// Parse reads os-release(5) assignments: KEY=VALUE lines, VALUE optionally
// in double or single quotes, with the shell escapes \\ \" \$ \` honoured
// inside double quotes. Comments, blank lines and lines that are not
// assignments are skipped, as systemd does.
func Parse(data []byte) map[string]string {
	vars := map[string]string{}
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte{'='})
		if !ok || !validKey(k) {
			continue
		}
		vars[string(k)] = unquote(string(v))
	}
	return vars
}

func validKey(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	for _, c := range k {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		if !strings.ContainsRune(v, '\\') {
			return v
		}
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte(`\"$`+"`", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

// fromOSRelease builds the OS from os-release variables. ID defaults to
// "linux" as os-release(5) says; a file with none of the identifying keys is
// not an os-release file.
func fromOSRelease(vars map[string]string) *inventory.OS {
	if vars["ID"] == "" && vars["VERSION_ID"] == "" && vars["NAME"] == "" && vars["PRETTY_NAME"] == "" {
		return nil
	}
	id := strings.ToLower(vars["ID"])
	if id == "" {
		id = "linux"
	}
	codename := vars["VERSION_CODENAME"]
	if codename == "" {
		codename = vars["UBUNTU_CODENAME"]
	}
	return &inventory.OS{
		ID:         id,
		VersionID:  vars["VERSION_ID"],
		Codename:   codename,
		PrettyName: vars["PRETTY_NAME"],
		CPEName:    vars["CPE_NAME"],
	}
}

// firstLine returns the first line of data, trimmed.
func firstLine(data []byte) string {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	return string(bytes.TrimSpace(line))
}

// fromAlpineRelease reads etc/alpine-release: one line, "3.18.4".
func fromAlpineRelease(data []byte) *inventory.OS {
	v := firstLine(data)
	if v == "" || !isDigit(v[0]) || !printable(v) {
		return nil
	}
	return &inventory.OS{ID: "alpine", VersionID: v, PrettyName: "Alpine Linux v" + v}
}

// fromDebianVersion reads etc/debian_version: "12.11" on a release, or
// "trixie/sid" on testing and unstable. Ubuntu ships it too ("bookworm/sid"),
// which is why os-release always wins over it.
func fromDebianVersion(data []byte) *inventory.OS {
	v := firstLine(data)
	if v == "" || !printable(v) {
		return nil
	}
	if isDigit(v[0]) {
		major, _, _ := strings.Cut(v, ".")
		return &inventory.OS{ID: "debian", VersionID: major, PrettyName: "Debian GNU/Linux " + v}
	}
	codename, _, ok := strings.Cut(v, "/")
	if !ok {
		return nil
	}
	return &inventory.OS{ID: "debian", Codename: codename, PrettyName: "Debian GNU/Linux " + v}
}

// redHatNames maps the product names of "<name> release <version> (<code>)"
// lines to os-release IDs.
var redHatNames = []struct{ prefix, id string }{
	{"Red Hat Enterprise Linux", "rhel"},
	{"AlmaLinux", "almalinux"},
	{"Rocky Linux", "rocky"},
	{"CentOS", "centos"},
	{"Fedora", "fedora"},
}

// fromRedHatRelease reads the Red Hat family's one-line release files:
// "AlmaLinux release 9.3 (Shamrock Pampas Cat)".
func fromRedHatRelease(data []byte) *inventory.OS {
	line := firstLine(data)
	if !printable(line) {
		return nil
	}
	name, rest, ok := strings.Cut(line, " release ")
	if !ok {
		return nil
	}
	version, _, _ := strings.Cut(rest, " ")
	if version == "" || !isDigit(version[0]) {
		return nil
	}
	for _, n := range redHatNames {
		if strings.HasPrefix(name, n.prefix) {
			return &inventory.OS{ID: n.id, VersionID: version, PrettyName: line}
		}
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// printable rejects binary content: release files are short ASCII text.
func printable(s string) bool {
	if len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
