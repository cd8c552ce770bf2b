package export_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-ai/portcullis/internal/export"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// lines reads a JSONL file: each line one ledger record, checked to be valid JSON.
func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("%s: line is not JSON: %q", path, sc.Bytes())
		}
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

func TestJSONLFileHoldsTheLedgersBytesAndRotatesBySize(t *testing.T) {
	led, st := testLedger(t)
	path := filepath.Join(t.TempDir(), "records.jsonl")
	sink, err := export.NewJSONL(path, 1500, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), sink, func(o *export.Options) { o.Batch = 1 })
	want := decide(t, led, 12)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	// Oldest first: path.2, path.1, path; only two rotated files are kept.
	var got []uint64
	for _, p := range []string{path + ".3", path + ".2", path + ".1", path} {
		if p == path+".3" {
			if _, err := os.Stat(p); err == nil {
				t.Fatalf("%s kept beyond max_files", p)
			}
			continue
		}
		for _, l := range lines(t, p) {
			fi, _ := os.Stat(p)
			if fi.Size() > 1500 {
				t.Fatalf("%s grew to %d bytes past max_bytes", p, fi.Size())
			}
			if bytes.Contains(l, []byte(secret)) {
				t.Fatalf("the secret reached the file: %s", l)
			}
			h, err := ledger.ParseHeader(l)
			if err != nil {
				t.Fatal(err)
			}
			var stored []byte
			_ = st.Scan(context.Background(), h.Seq, func(e ledger.Entry) error { stored = bytes.Clone(e.Data); return errors.New("one") })
			if !bytes.Equal(l, stored) {
				t.Fatalf("line for seq %d is not the ledger's bytes:\n%s\n%s", h.Seq, l, stored)
			}
			got = append(got, h.Seq)
		}
	}
	if len(got) == 0 || !slices.Equal(got, want[len(want)-len(got):]) || len(got) == len(want) {
		t.Fatalf("files hold seqs %v, want the newest of %v in order, the oldest rotated away", got, want)
	}
}

func TestJSONLFileMovedAwayIsCreatedAgain(t *testing.T) {
	led, st := testLedger(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "records.jsonl")
	sink, err := export.NewJSONL(path, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	tl := newTailer(t, st, filepath.Join(dir, "s.seq"), sink, nil)
	first := decide(t, led, 2)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".old"); err != nil { // an outside rotator
		t.Fatal(err)
	}
	second := decide(t, led, 2)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if n := len(lines(t, path+".old")); n != len(first) {
		t.Fatalf("moved file has %d lines, want %d", n, len(first))
	}
	if n := len(lines(t, path)); n != len(second) {
		t.Fatalf("new file has %d lines, want %d", n, len(second))
	}
}

func TestJSONLStdout(t *testing.T) {
	led, st := testLedger(t)
	var out bytes.Buffer
	sink, err := export.NewJSONL("-", 0, 0, &out)
	if err != nil {
		t.Fatal(err)
	}
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), sink, nil)
	want := decide(t, led, 4)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	ls := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	if len(ls) != len(want) {
		t.Fatalf("stdout has %d lines, want %d:\n%s", len(ls), len(want), out.Bytes())
	}
}

// otlpReceiver decodes OTLP/HTTP protobuf log requests as a collector does.
type otlpReceiver struct {
	auth   string
	status int
	reqs   []*collogspb.ExportLogsServiceRequest
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/logs" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want protobuf on /v1/logs", http.StatusUnsupportedMediaType)
		return
	}
	body, _ := io.ReadAll(req.Body)
	r.auth = req.Header.Get("Authorization")
	if r.status != 0 {
		w.WriteHeader(r.status)
		return
	}
	var m collogspb.ExportLogsServiceRequest
	if err := proto.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.reqs = append(r.reqs, &m)
	out, _ := proto.Marshal(&collogspb.ExportLogsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attrs(lr *logspb.LogRecord) map[string]string {
	m := map[string]string{}
	for _, kv := range lr.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		}
	}
	return m
}

func TestOTLPSendsLogRecords(t *testing.T) {
	led, st := testLedger(t)
	rcv := &otlpReceiver{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	sink := export.NewOTLP(srv.URL+"/v1/logs", "gw-test", http.Header{"Authorization": {"Bearer otlp-token"}})
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), sink, nil)
	want := decide(t, led, 5)
	if _, err := tl.Step(context.Background()); err == nil {
		t.Fatal("a 503 was taken as delivered")
	}
	rcv.status = 0
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, req := range rcv.reqs {
		rl := req.ResourceLogs[0]
		if rl.Resource.Attributes[0].Key != "service.name" || rl.Resource.Attributes[0].Value.GetStringValue() != "gw-test" {
			t.Fatalf("resource = %v", rl.Resource)
		}
		for _, lr := range rl.ScopeLogs[0].LogRecords {
			a := attrs(lr)
			if a["portcullis.decision"] != "allow" || a["portcullis.agent"] != "agent-1" || a["portcullis.tool"] != "fetch" || a["portcullis.kind"] != "decision" || a["portcullis.decision_id"] == "" {
				t.Fatalf("attributes = %v", a)
			}
			body := []byte(lr.Body.GetStringValue())
			if bytes.Contains(body, []byte(secret)) {
				t.Fatalf("the secret reached the receiver: %s", body)
			}
			h, err := ledger.ParseHeader(body)
			if err != nil || strconv.FormatUint(h.Seq, 10) != a["portcullis.seq"] {
				t.Fatalf("body seq %d (%v) differs from attribute %s", h.Seq, err, a["portcullis.seq"])
			}
			if lr.TimeUnixNano == 0 || lr.SeverityNumber != logspb.SeverityNumber_SEVERITY_NUMBER_INFO {
				t.Fatalf("time %d severity %v", lr.TimeUnixNano, lr.SeverityNumber)
			}
			got = append(got, h.Seq)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("receiver got %v, want %v once each, in order", got, want)
	}
	if rcv.auth != "Bearer otlp-token" {
		t.Fatalf("receiver's credential = %q", rcv.auth)
	}
}

func TestOTLPBadRequestIsPermanent(t *testing.T) {
	srv := httptest.NewServer(&otlpReceiver{status: http.StatusBadRequest})
	defer srv.Close()
	led, st := testLedger(t)
	tl := newTailer(t, st, filepath.Join(t.TempDir(), "s.seq"), export.NewOTLP(srv.URL+"/v1/logs", "", nil), nil)
	decide(t, led, 2)
	if err := drain(t, tl); err != nil {
		t.Fatal(err)
	}
	if s := tl.Stats(); s.Dropped != 2 || s.Exported != 0 {
		t.Fatalf("stats = %+v, want the refused batch dropped", s)
	}
}
