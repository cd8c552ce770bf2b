package app

import (
	"os/exec"
	"syscall"
)

// dieWithParent: an upstream server must not outlive the gateway that governs it (a killed
// wrapper would otherwise leave an ungoverned server running).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
