package testimage

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup runs cmd in its own process group and makes cancelling
// kill the whole group: debootstrap and apt start dpkg and maintainer
// scripts that would otherwise keep writing into a build directory that is
// being removed.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
