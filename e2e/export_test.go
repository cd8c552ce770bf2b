package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/sdk"
)

// exportedRecord is one ledger record as an export receiver saw it.
type exportedRecord struct {
	Seq        uint64 `json:"seq"`
	Kind       string `json:"kind"`
	DecisionID string `json:"decision_id"`
	Decision   string `json:"decision"`
	raw        string
}

// otlpLogs is an OTLP/HTTP logs receiver decoding the official protobuf messages.
type otlpLogs struct {
	mu   sync.Mutex
	recs []exportedRecord
	bad  []string
}

func (o *otlpLogs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req collogspb.ExportLogsServiceRequest
	if err == nil && (r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/x-protobuf") {
		err = fmt.Errorf("%s with %s", r.URL.Path, r.Header.Get("Content-Type"))
	}
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		o.bad = append(o.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				var rec exportedRecord
				body := lr.Body.GetStringValue()
				if err := json.Unmarshal([]byte(body), &rec); err != nil {
					o.bad = append(o.bad, "body: "+err.Error())
					continue
				}
				rec.raw = body
				attr := map[string]*commonpb.AnyValue{}
				for _, kv := range lr.Attributes {
					attr[kv.Key] = kv.Value
				}
				if attr["portcullis.decision_id"].GetStringValue() != rec.DecisionID || uint64(attr["portcullis.seq"].GetIntValue()) != rec.Seq ||
					attr["portcullis.agent"].GetStringValue() != app.DemoAgent || attr["portcullis.decision"].GetStringValue() != rec.Decision {
					o.bad = append(o.bad, fmt.Sprintf("attributes %v do not match the body %s", lr.Attributes, body))
				}
				o.recs = append(o.recs, rec)
			}
		}
	}
	out, _ := proto.Marshal(&collogspb.ExportLogsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpLogs) records() []exportedRecord {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]exportedRecord(nil), o.recs...)
}

func readJSONL(t *testing.T, path string) []exportedRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []exportedRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec exportedRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		rec.raw = sc.Text()
		out = append(out, rec)
	}
	return out
}

// checkExported: the records are the decisions made, each once, in ledger order, without the secret.
func checkExported(t *testing.T, where string, got []exportedRecord, ids []string, secret string) {
	t.Helper()
	if len(got) != len(ids) {
		t.Fatalf("%s: %d records, want %d", where, len(got), len(ids))
	}
	for i, rec := range got {
		if rec.Kind != "decision" || rec.DecisionID != ids[i] {
			t.Fatalf("%s: record %d is %s %s, want decision %s", where, i, rec.Kind, rec.DecisionID, ids[i])
		}
		if i > 0 && rec.Seq <= got[i-1].Seq {
			t.Fatalf("%s: seq %d after %d", where, rec.Seq, got[i-1].Seq)
		}
		if strings.Contains(rec.raw, secret) {
			t.Fatalf("%s: the secret was exported: %s", where, rec.raw)
		}
	}
}

// TestExportToOTLPAndJSONL: `portcullis serve` exports its decision records, as the ledger holds
// them (redacted), to a real OTLP/HTTP logs receiver and a JSON lines file, each once and in
// order across a restart, while the receiver is down for a while.
func TestExportToOTLPAndJSONL(t *testing.T) {
	dir, agentKey, _ := initData(t)
	rcv := &otlpLogs{}
	down := true
	var downMu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downMu.Lock()
		d := down
		downMu.Unlock()
		if d {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		rcv.ServeHTTP(w, r)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "records.jsonl")
	cfgPath := filepath.Join(dir, app.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf(`
export:
  sinks:
    - name: siem
      type: otlp
      endpoint: %s/v1/logs
      poll: 50ms
    - name: shipper
      type: jsonl
      path: %s
      poll: 50ms
`, srv.URL, file)...)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	const secret = "sk-live-e2e-0123456789abcdef"
	ctx := context.Background()
	var ids []string
	decide := func(d *daemon, n int) {
		agent := sdk.New(d.url, sdk.WithAPIKey(agentKey), sdk.WithAgentID(app.DemoAgent))
		for i := range n {
			tool := "fetch_customer_names"
			if i%3 == 2 {
				tool = "delete_file" // a denial among the allowed calls
			}
			dec, err := agent.Decide(ctx, sdk.DecideRequest{Tool: tool, Params: map[string]any{"limit": 10, "path": "/reports/x.pdf", "api_key": secret}})
			if err != nil || dec.DecisionID == "" {
				t.Fatalf("decide: %+v %v", dec, err)
			}
			ids = append(ids, dec.DecisionID)
		}
	}
	wait := func(what string, n int, got func() []exportedRecord) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for len(got()) < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}

	d := startServe(t, dir)
	decide(d, 6)
	// The file sink is not held back by the receiver being down.
	wait("file", len(ids), func() []exportedRecord { return readJSONL(t, file) })
	checkExported(t, "jsonl", readJSONL(t, file), ids, secret)
	if len(rcv.records()) != 0 {
		t.Fatal("records reached a receiver that answered 503")
	}
	downMu.Lock()
	down = false
	downMu.Unlock()
	wait("otlp", len(ids), rcv.records)
	d.stop(t)

	d = startServe(t, dir)
	decide(d, 4)
	wait("otlp", len(ids), rcv.records)
	wait("file", len(ids), func() []exportedRecord { return readJSONL(t, file) })
	d.stop(t)
	checkExported(t, "otlp", rcv.records(), ids, secret)
	checkExported(t, "jsonl", readJSONL(t, file), ids, secret)
	rcv.mu.Lock()
	bad := rcv.bad
	rcv.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("receiver: %v", bad)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
	for _, rec := range readJSONL(t, file) {
		if !bytes.Contains([]byte(rec.raw), []byte(`"api_key":"`)) {
			t.Fatalf("the record's params lost the redacted key: %s", rec.raw)
		}
	}
}
