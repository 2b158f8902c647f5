//go:build !linux

package browsertest

import "os/exec"

func setProcAttr(*exec.Cmd) {}

// killProcs kills the browser process; the context cancellation that
// follows would too.
func killProcs(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Kill()
	}
}
