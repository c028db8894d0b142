package java

import (
	"strconv"
	"strings"
)

// parseProperties reads a Java .properties file (java.util.Properties.load):
// "key=value", "key: value" or "key value" lines, "#" and "!" comments,
// backslash line continuations and escapes. Malformed input gives whatever
// pairs can be read; it never fails.
func parseProperties(data []byte) map[string]string {
	props := map[string]string{}
	lines := strings.FieldsFunc(string(data), func(r rune) bool { return r == '\n' || r == '\r' })
	for i := 0; i < len(lines); i++ {
		line := strings.TrimLeft(lines[i], " \t\f")
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		// A line ending in an odd number of backslashes continues on the
		// next one, whose leading white space is dropped.
		for trailingBackslashes(line)%2 == 1 && i+1 < len(lines) {
			i++
			line = line[:len(line)-1] + strings.TrimLeft(lines[i], " \t\f")
		}
		if trailingBackslashes(line)%2 == 1 {
			line = line[:len(line)-1]
		}
		key, value := splitProperty(line)
		props[unescape(key)] = unescape(value)
	}
	return props
}

func trailingBackslashes(s string) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

// splitProperty splits a logical line at the first unescaped '=', ':' or
// white space, and drops the separator and the white space around it.
func splitProperty(line string) (key, value string) {
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		if c == '\\' {
			i++
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			break
		}
	}
	key = line[:min(i, len(line))]
	rest := strings.TrimLeft(line[min(i, len(line)):], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	return key, rest
}

// unescape resolves \t, \n, \r, \f, \uXXXX and \x (x itself).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 <= len(s) {
				if r, err := strconv.ParseUint(s[i+1:i+5], 16, 16); err == nil {
					b.WriteRune(rune(r))
					i += 4
					continue
				}
			}
			b.WriteByte('u')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// parseManifest reads the main section of a JAR manifest
// (https://docs.oracle.com/en/java/javase/21/docs/specs/jar/jar.html):
// "Name: value" headers, continuation lines starting with one space, ending
// at the first blank line. Header names are case-insensitive and returned
// in lower case.
func parseManifest(data []byte) map[string]string {
	m := map[string]string{}
	var last string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if line[0] == ' ' {
			if last != "" {
				m[last] += line[1:]
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			last = ""
			continue
		}
		last = strings.ToLower(strings.TrimSpace(name))
		m[last] = strings.TrimPrefix(value, " ")
	}
	return m
}

// fallback names the artifact of an archive that has no pom.properties,
// from its manifest (may be nil) and its file name.
//
// The artifactId is the file name without version and extension, which is
// how Maven, Gradle and distributions name jars ("log4j-core-2.14.1.jar",
// Debian's "log4j-core.jar"). The version is Implementation-Version, else
// the one in the file name, else Bundle-Version. The groupId comes from the
// OSGi Bundle-SymbolicName or the Automatic-Module-Name when it is the
// groupId followed by a segment the artifactId ends with
// ("org.apache.logging.log4j.api" for log4j-api), else from
// Implementation-Vendor-Id; it is left empty rather than guessed further.
func fallback(m map[string]string, fileName string) (coords, bool) {
	artifact, fileVersion := splitFileName(fileName)
	if artifact == "" {
		return coords{}, false
	}
	version := ""
	for _, v := range []string{m["implementation-version"], fileVersion, m["bundle-version"]} {
		if v = strings.TrimSpace(v); plausibleVersion(v) {
			version = v
			break
		}
	}
	if version == "" {
		return coords{}, false
	}
	group := groupFromSymbolicName(m["bundle-symbolicname"], artifact)
	if group == "" {
		group = groupFromSymbolicName(m["automatic-module-name"], artifact)
	}
	if group == "" {
		if v := strings.TrimSpace(m["implementation-vendor-id"]); isDottedIdent(v) {
			group = v
		}
	}
	return maven(group, artifact, version), true
}

// groupFromSymbolicName returns the groupId part of an OSGi symbolic name
// or Java module name, or "" when the name does not end with the artifact.
// Two splits are tried, the longer group first: before the last dotted
// segment when the artifactId ends with it ("org.apache.commons.text" for
// commons-text → "org.apache.commons"; "com.fasterxml.jackson.core.
// jackson-databind" → "com.fasterxml.jackson.core"), then before the whole
// artifactId ("org.apache.geronimo.specs.geronimo-annotation_1.3_spec").
// Dashes, underscores and dots count as the same separator when comparing
// with the artifactId, and the group must look like a Java package name.
func groupFromSymbolicName(name, artifact string) string {
	name, _, _ = strings.Cut(name, ";") // "x.y.z;singleton:=true"
	name = strings.TrimSpace(name)
	n, a := normName(name), normName(artifact)
	if a == "" {
		return ""
	}
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		last := n[i+1:]
		if last != "" && (a == last || strings.HasSuffix(a, "."+last)) && isPackageName(name[:i]) {
			return name[:i]
		}
	}
	if strings.HasSuffix(n, "."+a) && isPackageName(name[:len(n)-len(a)-1]) {
		return name[:len(n)-len(a)-1]
	}
	return ""
}

// isPackageName reports dotted names of at least two segments, each a
// letter followed by letters and digits ("org.apache.commons").
func isPackageName(s string) bool {
	segs := strings.Split(s, ".")
	if len(segs) < 2 {
		return false
	}
	for _, seg := range segs {
		if seg == "" || !isLetter(seg[0]) {
			return false
		}
		for i := 1; i < len(seg); i++ {
			if !isLetter(seg[i]) && (seg[i] < '0' || seg[i] > '9') {
				return false
			}
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// normName lower-cases ASCII letters and turns "-" and "_" into ".", byte
// for byte, so indexes into the result are indexes into s.
func normName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == '-' || c == '_':
			b[i] = '.'
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// isDottedIdent reports a reverse-domain identifier like "org.apache".
func isDottedIdent(s string) bool {
	if !strings.Contains(s, ".") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
		return false
	}
	for _, r := range s {
		if !(r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// splitFileName splits "log4j-core-2.14.1.jar" into artifactId and version.
// The version starts at the first "-<digit>" after which every
// dot- or dash-separated word looks like a version word, so that
// "log4j-1.2-api-2.17.1.jar" is log4j-1.2-api at 2.17.1. A name without a
// version ("log4j-core.jar") gives the whole base name and "".
func splitFileName(fileName string) (artifact, version string) {
	base := fileName
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	for i := 0; i+1 < len(base); i++ {
		if base[i] != '-' || base[i+1] < '0' || base[i+1] > '9' || i == 0 {
			continue
		}
		if versionWords(base[i+1:]) {
			return base[:i], base[i+1:]
		}
	}
	return base, ""
}

func versionWords(v string) bool {
	for w := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == '.' || r == '-' || r == '_' }) {
		if !versionWord(strings.ToLower(w)) {
			return false
		}
	}
	return true
}

// versionWord accepts numbers, numbers with a letter suffix ("1a"), letters
// followed by a number ("rc2", "m1", "v20220331", "jdk8") and the
// qualifiers Maven and well-known projects use.
func versionWord(w string) bool {
	switch w {
	case "alpha", "beta", "rc", "cr", "m", "milestone", "snapshot", "release", "final",
		"ga", "sp", "jre", "android", "incubating", "redhat", "empty":
		return true
	}
	letters := 0
	for letters < len(w) && w[letters] >= 'a' && w[letters] <= 'z' {
		letters++
	}
	digits := 0
	for letters+digits < len(w) && w[letters+digits] >= '0' && w[letters+digits] <= '9' {
		digits++
	}
	if digits == 0 || letters > 10 {
		return false
	}
	rest := w[letters+digits:]
	if letters > 0 {
		return rest == ""
	}
	// A number, optionally with a short letter suffix ("1a", "0b").
	for _, c := range rest {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return len(rest) <= 2
}
