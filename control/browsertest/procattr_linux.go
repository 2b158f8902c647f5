package browsertest

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the browser in a process group of its own, so that
// killProcs reaches its helper processes, and has the kernel kill it if the
// test process dies without its cleanup.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killProcs kills the browser's process group.
func killProcs(cmd *exec.Cmd) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
