package inventory

import "strings"

// MaybeExecutable reports whether the file may be a compiled program: a
// regular file with an execute bit, outside the directories that hold only
// documentation or maintainer scripts, and without the extension of a
// script or a document. Any executable may be a program whatever its name,
// so the path only excludes. Extractors of executables buffer every file
// they take (Input.ReaderAt), which is why their Required must turn the
// others away; the size bounds are each extractor's own.
func MaybeExecutable(path string, info FileInfo) bool {
	return info.Mode.IsRegular() && info.Mode&0o111 != 0 && !notProgramPath(path)
}

// notProgramPath reports paths where executable files are scripts or
// documentation, never compiled programs.
func notProgramPath(path string) bool {
	for _, dir := range [...]string{
		"usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/",
		"usr/include/", "var/lib/dpkg/info/", "etc/",
	} {
		if strings.HasPrefix(path, dir) {
			return true
		}
	}
	i := strings.LastIndexAny(path, "./")
	if i < 0 || path[i] == '/' {
		return false
	}
	switch strings.ToLower(path[i:]) {
	case ".sh", ".bash", ".py", ".pl", ".pm", ".rb", ".js", ".php", ".txt", ".md",
		".html", ".json", ".xml", ".yaml", ".yml", ".conf", ".cfg", ".ini", ".h", ".c":
		return true
	}
	return false
}
