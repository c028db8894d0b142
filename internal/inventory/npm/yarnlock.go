package npm

import (
	"bytes"
	"context"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// parseYarnLock reads yarn.lock, both the classic v1 format (not YAML:
// `version "1.2.3"`) and the berry format (YAML, with `resolution:`). Both
// have the same shape — an unindented entry line listing the requested
// specs, then fields indented by two spaces, deeper lines belonging to
// nested maps — so one line scanner reads both without a YAML parser, in
// one pass over the bytes and without per-line allocations beyond the
// fields kept.
func parseYarnLock(ctx context.Context, b []byte, location, extractor string) ([]inventory.Package, error) {
	var (
		d     inventory.Dedup
		entry yarnEntry
		n     int
	)
	flush := func() {
		if name, version, ok := entry.resolve(); ok {
			d.Add(newPackage(name, version, location, extractor))
		}
		entry = yarnEntry{}
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line = bytes.TrimRight(line, " \t\r")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		switch {
		case line[0] != ' ':
			flush()
			entry.specs = string(line)
		case len(line) > 2 && line[1] == ' ' && line[2] != ' ':
			key, value := yarnField(line[2:])
			switch key {
			case "version":
				entry.version = value
			case "resolution":
				entry.resolution = value
			}
		}
	}
	flush()
	return d.Sorted(), nil
}

type yarnEntry struct {
	specs      string // `"a@^1.0.0", a@^1.1.0:`
	version    string
	resolution string // berry only: `a@npm:1.1.2`
}

// resolve returns the real package name and version of an entry, or false
// for entries that are not registry packages (berry's __metadata, the
// project's workspaces, local links and file dependencies, and berry's
// patch: entries, which duplicate the npm: entry they patch).
func (e *yarnEntry) resolve() (name, version string, ok bool) {
	if !validVersion(e.version) {
		return "", "", false
	}
	var protocol string
	if e.resolution != "" {
		name, protocol = splitSpec(e.resolution)
	} else {
		spec, _, _ := strings.Cut(strings.TrimSuffix(e.specs, ":"), ",")
		name, protocol = splitSpec(unquote(strings.TrimSpace(spec)))
		if real, ok := strings.CutPrefix(protocol, "npm:"); ok && strings.LastIndexByte(real, '@') > 0 {
			// Alias: minimist-old@npm:minimist@0.0.8.
			name, protocol = splitSpec(real)
		}
	}
	if i := strings.IndexByte(protocol, ':'); i > 0 {
		switch protocol[:i] {
		case "workspace", "link", "portal", "file", "exec", "patch":
			return "", "", false
		}
	}
	if !validName(name) {
		return "", "", false
	}
	return name, e.version, true
}

// splitSpec splits "name@range" (name may be "@scope/name") at its first
// '@' after the first byte.
func splitSpec(s string) (name, rest string) {
	if len(s) < 2 {
		return s, ""
	}
	i := strings.IndexByte(s[1:], '@')
	if i < 0 {
		return s, ""
	}
	return s[:i+1], s[i+2:]
}

// yarnField splits a field line: berry `key: value`, classic `key value`;
// values may be double-quoted.
func yarnField(line []byte) (key, value string) {
	sep := bytes.IndexByte(line, ' ')
	if sep < 0 {
		return "", ""
	}
	k := line[:sep]
	k = bytes.TrimSuffix(k, []byte(":"))
	switch string(k) { // the compiler does not allocate for string(k) here
	case "version":
		key = "version"
	case "resolution":
		key = "resolution"
	default:
		return "", ""
	}
	return key, unquote(string(bytes.TrimSpace(line[sep+1:])))
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}
