//go:build !linux

package app

import "os/exec"

// dieWithParent has no portable equivalent of Pdeathsig; Close still terminates the child.
func dieWithParent(*exec.Cmd) {}
