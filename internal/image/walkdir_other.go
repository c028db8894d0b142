//go:build !unix

package image

import (
	"io/fs"
	"os"
)

const openFlags = 0

func skipMount(*os.Root, string, fs.FileInfo) bool { return false }
