package inventory

import (
	"io/fs"
	"testing"
)

func TestMaybeExecutable(t *testing.T) {
	tests := []struct {
		path string
		mode fs.FileMode
		want bool
	}{
		{"usr/local/bin/app", 0o755, true},
		{"app", 0o700, true},
		{"usr/lib/libgo.so", 0o755, true},
		{"opt/app.d/tool", 0o755, true},
		{"usr/bin/x.exe", 0o755, true},
		{"usr/local/bin/app", 0o644, false},
		{"usr/local/bin/app", fs.ModeSymlink | 0o777, false},
		{"usr/local/bin/app", fs.ModeDir | 0o755, false},
		{"var/lib/dpkg/info/bash.postinst", 0o755, false},
		{"usr/share/doc/x/examples/run", 0o755, false},
		{"etc/init.d/ssh", 0o755, false},
		{"usr/local/bin/entrypoint.sh", 0o755, false},
		{"opt/app/tool.PY", 0o755, false},
		{"opt/app/README.md", 0o755, false},
	}
	for _, tt := range tests {
		if got := MaybeExecutable(tt.path, FileInfo{Size: 1 << 20, Mode: tt.mode}); got != tt.want {
			t.Errorf("MaybeExecutable(%q, %v) = %v, want %v", tt.path, tt.mode, got, tt.want)
		}
	}
}
