// Command startup measures what a process launch costs: `portcullis version` run to completion,
// and `portcullis serve` from exec until /readyz answers 200, each repeated and summarised as
// the median and minimum wall time.
//
//	go build -o /tmp/portcullis ./cmd/portcullis
//	go run ./bench/startup -bin /tmp/portcullis -n 20
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	bin := flag.String("bin", "portcullis", "the binary to measure")
	n := flag.Int("n", 20, "runs of each")
	flag.Parse()
	if err := run(*bin, *n); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(bin string, n int) error {
	var version, serve []time.Duration
	for range n {
		t := time.Now()
		if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil {
			return fmt.Errorf("version: %v: %s", err, out)
		}
		version = append(version, time.Since(t))
	}
	dir, err := os.MkdirTemp("", "startup")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The first serve initialises the data directory; it is not counted.
	for i := range n + 1 {
		d, err := readiness(bin, dir)
		if err != nil {
			return err
		}
		if i > 0 {
			serve = append(serve, d)
		}
	}
	fmt.Printf("version: median %v, min %v (%d runs)\n", median(version), slices.Min(version), n)
	fmt.Printf("serve to /readyz 200: median %v, min %v (%d runs)\n", median(serve), slices.Min(serve), n)
	return nil
}

// readiness starts serve on an ephemeral port and returns the time until /readyz answers 200.
func readiness(bin, dir string) (time.Duration, error) {
	t := time.Now()
	cmd := exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "portcullis listening on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		return 0, fmt.Errorf("serve printed no address")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	c := &http.Client{Timeout: time.Second}
	for time.Since(t) < 30*time.Second {
		if r, err := c.Get(addr + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return time.Since(t), nil
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	return 0, fmt.Errorf("serve not ready after 30s")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
