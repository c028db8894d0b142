package image

import (
	"path"
	"strings"
)

// cleanPath turns a tar entry name into the path Bulwark reports: slash
// separated, cleaned, relative to the image root, without a leading "/" or
// "./". Absolute names are legal in tar files and are taken relative to the
// root, like container runtimes do. ok is false when the name escapes the
// root ("../x", "a/../../x"): such an entry must not be read at all.
// The root itself is returned as "".
func cleanPath(name string) (p string, ok bool) {
	p = strings.TrimLeft(name, "/")
	if p == "" {
		return "", true
	}
	p = path.Clean(p)
	switch {
	case p == ".":
		return "", true
	case p == "..", strings.HasPrefix(p, "../"):
		return "", false
	}
	return p, true
}

// parentDir returns the directory holding p ("" for the root).
func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// joinPath joins a cleaned directory ("" for the root) and a base name.
func joinPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}
