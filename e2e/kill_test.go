package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeKill9UnderLoad kills the real gateway with SIGKILL while clients are deciding, restarts
// it on the same data directory, and repeats. Every decision a client was answered ALLOW must be in
// the ledger afterwards, every restart must come up (a torn tail is trimmed, acknowledged records
// beyond the last checkpoint are accepted), and `audit verify` must pass at the end.
//
// CI runs a few rounds; PORTCULLIS_KILL_ROUNDS=20 runs the full loop by hand.
func TestServeKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the real binary")
	}
	rounds := 3
	if s := os.Getenv("PORTCULLIS_KILL_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("PORTCULLIS_KILL_ROUNDS=%q: want a positive integer", s)
		}
		rounds = n
	}
	dir, agentKey, _ := initData(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))

	var (
		mu     sync.Mutex
		acked  = map[string]bool{}
		denied int
	)
	body := []byte(`{"tool":"fetch_customer_names","params":{"limit":50}}`)
	for round := range rounds {
		d := startServe(t, dir)
		client := &http.Client{Timeout: 10 * time.Second}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest(http.MethodPost, d.url+"/v1/decide", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+agentKey)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						// The gateway was killed under us: whatever was in flight was never
						// acknowledged, so it owes us nothing.
						return
					}
					var out struct {
						Decision   string `json:"decision"`
						DecisionID string `json:"decision_id"`
					}
					err = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if err != nil {
						return
					}
					mu.Lock()
					if resp.StatusCode == http.StatusOK && out.Decision == "ALLOW" && out.DecisionID != "" {
						acked[out.DecisionID] = true
					} else {
						denied++
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		_ = d.cmd.Process.Kill()
		<-d.done
		close(stop)
		wg.Wait()
		mu.Lock()
		t.Logf("round %d: %d acknowledged so far", round, len(acked))
		mu.Unlock()
	}
	if len(acked) == 0 {
		t.Fatal("no decision was acknowledged: the load never reached the gateway")
	}
	if denied > 0 {
		t.Errorf("%d answers were not ALLOW for an allowed call", denied)
	}

	// A last clean start and stop: the gateway must accept what the kills left.
	d := startServe(t, dir)
	d.stop(t)

	if code, out, errb := cli(t, nil, "audit", "verify", "--data", dir); code != 0 {
		t.Fatalf("audit verify after %d kills: exit %d\n%s%s", rounds, code, out, errb)
	}
	code, out, errb := cli(t, nil, "audit", "export", "--data", dir)
	if code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, errb)
	}
	inLedger := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Kind       string `json:"kind"`
			DecisionID string `json:"decision_id"`
			Decision   string `json:"decision"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if rec.Kind == "decision" {
			inLedger[rec.DecisionID] = true
		}
	}
	missing := 0
	for id := range acked {
		if !inLedger[id] {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged decision %s is not in the ledger", id)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged decisions are missing from the ledger", missing, len(acked))
	}
	t.Logf("%d rounds of kill -9: %d acknowledged decisions, all in the ledger; audit verify passes", rounds, len(acked))
}
