// Package proc holds what the load tools under bench/ share about the processes they drive: the
// CPU time each has used (Linux /proc and getrusage), the children of a process, the machine's CPU
// model and the address a server prints when it starts listening.
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU is the user+system CPU time process pid has used so far (Linux /proc; 0 elsewhere or once
// the process is gone).
func CPU(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux platform Go supports.
const clockTicks = 100

// statFields are the fields of /proc/PID/stat after the command name (which may hold spaces and
// parentheses, so they start after the last ')'): [0] is the state, [1] the parent's pid.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
}

// Children lists the pids whose parent is pid (Linux /proc; none elsewhere).
func Children(pid int) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range paths {
		child, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		if f := statFields(child); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// SelfCPU is the CPU time this process has used so far, children excluded.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPUModel is the machine's CPU model name from /proc/cpuinfo.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown CPU"
}

var listeningRe = regexp.MustCompile(`listening on (http://\S+)`)

// WaitListening reads a server's output until it prints "listening on http://ADDR" and returns
// the URL. The rest of the output is drained, so the server never blocks writing it.
func WaitListening(r io.Reader, timeout time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if m := listeningRe.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		return u, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("no %q within %s", "listening on", timeout)
	}
}
