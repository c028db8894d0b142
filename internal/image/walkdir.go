package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/bulwark-security/bulwark/internal/inventory"
)

// WalkDir is Walk for a directory (`bulwark scan fs DIR`): it returns what
// extract found in the regular files of root for which required is true,
// sorted by path, with Layer "".
//
// Every file is opened through os.Root, so neither a symlink nor a ".."
// can make it open anything outside root; symlinks are not followed at all
// and only regular files are read (devices, fifos and sockets are skipped,
// and so are the proc, sys and dev mount points directly under root, for
// scans of a live system's "/"). Unreadable files and directories are
// FileErrors; Limits.MaxFiles bounds the entries visited and
// Limits.MaxFileSize the ReaderAt, as in Walk, so both walks give the same
// results for the same files.
func WalkDir[T any](ctx context.Context, root string, lim Limits,
	required func(path string, info inventory.FileInfo) bool,
	extract func(ctx context.Context, in *inventory.Input) (T, error),
) ([]Entry[T], []FileError, error) {
	lim = lim.normalize()
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", root, err)
	}
	defer r.Close()
	rootInfo, err := r.Stat(".")
	if err != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", root, err)
	}
	var (
		entries []Entry[T]
		errs    []FileError
		files   int
	)
	walkErr := fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			// A directory that cannot be read (or a file that vanished):
			// note it and go on with the rest.
			errs = append(errs, FileError{Path: p, Err: err})
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if files++; files > lim.MaxFiles {
			return fmt.Errorf("%w: more than %d entries", ErrLimit, lim.MaxFiles)
		}
		if d.IsDir() {
			if !strings.Contains(p, "/") && skipMount(r, p, rootInfo) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			errs = append(errs, FileError{Path: p, Err: err})
			return nil
		}
		fi := inventory.FileInfo{Size: info.Size(), Mode: info.Mode()}
		if !required(p, fi) {
			return nil
		}
		val, err := extractFile(ctx, r, p, fi, lim.MaxFileSize, extract)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if errors.Is(err, errNotRegular) {
			return nil // replaced by something else since it was listed
		}
		if err != nil {
			errs = append(errs, FileError{Path: p, Err: err})
			return nil
		}
		entries = append(entries, Entry[T]{Path: p, Value: val})
		return nil
	})
	if walkErr != nil {
		return nil, nil, fmt.Errorf("walk %s: %w", root, walkErr)
	}
	slices.SortFunc(entries, func(a, b Entry[T]) int { return strings.Compare(a.Path, b.Path) })
	slices.SortStableFunc(errs, func(a, b FileError) int { return strings.Compare(a.Path, b.Path) })
	return entries, errs, nil
}

var errNotRegular = errors.New("not a regular file")

func extractFile[T any](ctx context.Context, r *os.Root, p string, fi inventory.FileInfo, maxSize int64,
	extract func(context.Context, *inventory.Input) (T, error)) (val T, err error) {
	f, err := r.OpenFile(p, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return val, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return val, err
	}
	if !st.Mode().IsRegular() {
		return val, errNotRegular
	}
	fi.Size = st.Size()
	in := &inventory.Input{
		Path:   p,
		Info:   fi,
		Reader: f,
		ReaderAt: func() (io.ReaderAt, int64, error) {
			if fi.Size > maxSize {
				return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", inventory.ErrTooLarge, fi.Size, maxSize)
			}
			return f, fi.Size, nil
		},
	}
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("extract panicked: %v", x)
		}
	}()
	return extract(ctx, in)
}
