package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/store/sqlite"
)

// archiveChildEnv makes the test binary archive the ledger in the named directory up to
// archiveChildEnv_TO, one segment of 100 records at a time, until it is killed or done.
const archiveChildEnv = "PORTCULLIS_LEDGER_ARCHIVE_CHILD"

func archiveChild(dir string) {
	keys, err := ledger.LoadKeys(dir)
	if err == nil {
		var st *sqlite.Ledger
		if st, err = sqlite.OpenLedger(filepath.Join(dir, "ledger.db")); err == nil {
			to, _ := strconv.ParseUint(os.Getenv(archiveChildEnv+"_TO"), 10, 64)
			_, err = ledger.ApplyRetention(context.Background(), st, filepath.Join(dir, "archive"), ledger.Retention{}, to, 100, time.Now(),
				ledger.VerifyOptions{Keys: keys.Public, CheckpointRecords: 50})
			st.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "archive child:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// The archiving process is killed (SIGKILL) at random moments — while writing a file, between
// the file's fsync and the prune, during the prune's chunks. Each time, running it again
// completes the work: every record is in exactly one verified archive or the live log, and
// archives + live verify.
func TestArchiveCrashLoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys, err := ledger.GenerateKeys(dir, ledger.NewOrigin())
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, st: st, keys: keys}
	l := e.open(t, func(o *ledger.Options) { o.CheckpointRecords = 50 })
	for i := range 3000 {
		mustAppend(t, l, decision(i))
	}
	mustClose(t, l)
	st.Close()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	vopts := ledger.VerifyOptions{Keys: keys.Public, CheckpointRecords: 50}
	killed, resumed := 0, 0
	for round := range 12 {
		to := uint64(250*(round+1) + 1) // a checkpoint every 50 records from 1
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), archiveChildEnv+"="+dir, archiveChildEnv+"_TO="+strconv.FormatUint(to, 10))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		}

		st, err := sqlite.OpenLedger(filepath.Join(dir, "ledger.db"))
		if err != nil {
			t.Fatalf("round %d: reopen after the kill: %v", round, err)
		}
		res, err := ledger.ApplyRetention(ctx, st, filepath.Join(dir, "archive"), ledger.Retention{}, to, 100, time.Now(), vopts)
		if err != nil {
			t.Fatalf("round %d: the next run did not complete the archive: %v", round, err)
		}
		for _, r := range res {
			if r.Resumed {
				resumed++
			}
		}
		as, err := ledger.ListArchives(filepath.Join(dir, "archive"))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ledger.VerifyArchived(ctx, as, st, vopts)
		if err != nil || !rep.Intact {
			t.Fatalf("round %d: archives + live after a kill: %+v %v", round, rep.Log, err)
		}
		if rep.Log.RecordsChecked != 3002 || as[len(as)-1].To() != to {
			t.Fatalf("round %d: %d records checked, archives end at %d; want 3002, %d", round, rep.Log.RecordsChecked, as[len(as)-1].To(), to)
		}
		st.Close()
	}
	t.Logf("%d of 12 archiving processes killed before they exited; %d archives written but not pruned were completed", killed, resumed)
}
