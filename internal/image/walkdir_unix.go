//go:build unix

package image

import (
	"io/fs"
	"os"
	"syscall"
)

// openFlags: never follow a symlink swapped in after the directory was
// listed, and never block opening a fifo swapped in the same way.
const openFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK

// skipMount reports whether top-level directory name is a pseudo-filesystem
// mount point (proc, sys, dev on another device than root): their files
// look regular but are not files to inventory, and some block on read.
func skipMount(r *os.Root, name string, rootInfo fs.FileInfo) bool {
	switch name {
	case "proc", "sys", "dev":
	default:
		return false
	}
	st, err := r.Lstat(name)
	if err != nil {
		return true
	}
	a, ok1 := st.Sys().(*syscall.Stat_t)
	b, ok2 := rootInfo.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && a.Dev != b.Dev
}
