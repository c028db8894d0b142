package k8stest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in its own process group (stop kills the group)
// and has the kernel kill it if the test binary dies without cleaning up
// (a panic or a -timeout), so no kube-apiserver outlives its test.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
