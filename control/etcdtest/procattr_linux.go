package etcdtest

import (
	"os/exec"
	"syscall"
)

// setProcAttr has the kernel kill etcd if the test process dies without
// its cleanup.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
