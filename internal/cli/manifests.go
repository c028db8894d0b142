package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// manifestFiles is p itself when p is a file, or the regular files under
// directory p (recursively, symlinks not followed) whose extension, compared
// in lower case, is one of exts. policy check reads JSON too; posture fix
// lists only YAML because it does not rewrite JSON manifests.
func manifestFiles(p string, exts ...string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var out []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && slices.Contains(exts, strings.ToLower(filepath.Ext(path))) {
			out = append(out, path)
		}
		return nil
	})
	return out, err
}
