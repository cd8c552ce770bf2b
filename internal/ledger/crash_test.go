package ledger_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// crashChildEnv makes the test binary act as the crash test's child: it appends to the ledger
// in the named directory with 64 concurrent callers until it is killed.
const crashChildEnv = "PORTCULLIS_LEDGER_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if dir := os.Getenv(archiveChildEnv); dir != "" {
		archiveChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild prints "ready" once the ledger is open, then "<seq> <decision id>" for every
// acknowledged record — only after Append returned, i.e. after the record is durable.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	keys, err := ledger.LoadKeys(dir)
	if err != nil {
		fail(err)
	}
	st, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		fail(err)
	}
	vs, _, err := keys.Verifiers()
	if err != nil {
		fail(err)
	}
	// With the gateway's witness: a kill between a commit and the witness's write leaves the
	// witness behind the store, which the next start must accept.
	l, err := ledger.Open(context.Background(), ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs, CheckpointRecords: 100,
		WitnessFile: filepath.Join(dir, ledger.WitnessFile)})
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex
	out := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if _, err := os.Stdout.WriteString(s); err != nil {
			os.Exit(4)
		}
	}
	out("ready\n")
	run := os.Getenv(crashChildEnv + "_RUN")
	for g := range 64 {
		go func() {
			for i := 0; ; i++ {
				r := decision(i)
				r.DecisionID = fmt.Sprintf("%s-%d-%d", run, g, i)
				seq, err := l.Append(context.Background(), r)
				if err != nil {
					fail(err)
				}
				out(fmt.Sprintf("%d %s\n", seq, r.DecisionID))
			}
		}()
	}
	select {}
}

// The parent kills the child with SIGKILL at a random moment, 200 times; every record the
// child reported as acknowledged must be in the log, and the log must verify.
func TestCrashLoop(t *testing.T) {
	const runs = 200
	dir := t.TempDir()
	keys, err := ledger.GenerateKeys(dir, ledger.NewOrigin())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acks := map[uint64]string{}
	start := time.Now()
	killedBeforeReady := 0
	var readyWait []time.Duration
	for run := range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_RUN="+strconv.Itoa(run))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Read the child's output as it comes; "ready" tells when it is appending.
		ready := make(chan struct{})
		readDone := make(chan []byte)
		go func() {
			var all []byte
			buf := make([]byte, 64<<10)
			signalled := false
			for {
				n, err := stdout.Read(buf)
				all = append(all, buf[:n]...)
				if !signalled && bytes.HasPrefix(all, []byte("ready\n")) {
					close(ready)
					signalled = true
				}
				if err != nil {
					readDone <- all
					return
				}
			}
		}()
		if rng.IntN(10) == 0 {
			// Kill during start-up (recovery, startup record) now and then.
			killedBeforeReady++
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		} else {
			select {
			case <-ready:
				readyWait = append(readyWait, time.Since(started))
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("run %d: the child did not become ready: %s", run, stderr.String())
			}
			// Then a random moment while 64 callers append.
			time.Sleep(time.Duration(1+rng.IntN(30)) * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("run %d: kill: %v", run, err)
		}
		all := <-readDone
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("run %d: child exited by itself (%v): %s", run, err, stderr.String())
		}
		complete := bytes.LastIndexByte(all, '\n') + 1
		sc := bufio.NewScanner(bytes.NewReader(all[:complete]))
		for sc.Scan() {
			line := sc.Text()
			if line == "ready" {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				t.Fatalf("run %d: bad line %q", run, line)
			}
			seq, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				t.Fatalf("run %d: bad seq in %q", run, line)
			}
			if old, dup := acks[seq]; dup {
				t.Fatalf("run %d: seq %d acknowledged twice (%s, then %s): an acknowledged record was lost", run, seq, old, f[1])
			}
			acks[seq] = f[1]
		}
	}
	// Recover once more, close cleanly, and check.
	st, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vs, _, _ := keys.Verifiers()
	l, err := ledger.Open(context.Background(), ledger.Options{Store: st, Signer: keys.Signer, Verifiers: vs,
		WitnessFile: filepath.Join(dir, ledger.WitnessFile)})
	if err != nil {
		t.Fatalf("open after %d crashes: %v", runs, err)
	}
	mustClose(t, l)
	rep, err := ledger.Verify(context.Background(), st, ledger.VerifyOptions{Keys: keys.Public})
	if err != nil || !rep.Intact {
		t.Fatalf("verify after %d crashes: %+v, %v", runs, rep, err)
	}
	rs := records(t, st)
	recoveries := 0
	for _, r := range rs {
		if r.Kind == ledger.KindRecovery {
			recoveries++
		}
	}
	for seq, id := range acks {
		if seq >= uint64(len(rs)) || rs[seq].DecisionID != id {
			t.Fatalf("acknowledged record %d (%s) missing after the crashes", seq, id)
		}
	}
	if len(acks) == 0 {
		t.Fatal("no record was ever acknowledged")
	}
	slices.Sort(readyWait)
	t.Logf("%d runs (%d killed during start-up) in %v (median start-up %v): %d acknowledged records, %d records, %d recovery records",
		runs, killedBeforeReady, time.Since(start).Round(time.Millisecond), readyWait[len(readyWait)/2].Round(time.Millisecond), len(acks), len(rs), recoveries)
}
