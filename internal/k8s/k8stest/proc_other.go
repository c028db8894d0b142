//go:build unix && !linux

package k8stest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group (stop kills the group).
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
