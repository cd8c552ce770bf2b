package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

func FuzzParseRecord(f *testing.F) {
	r := decision(3)
	r.Seq, r.Prev = 3, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	good, _ := ledger.Encode(r)
	f.Add(good)
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup"}`))
	f.Add([]byte(`{"v":1,"seq":18446744073709551615,"prev":"","kind":"x"}`))
	f.Add([]byte(`{"v":1,"seq":`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, herr := ledger.ParseHeader(data)
		rec, err := ledger.ParseRecord(data)
		if err != nil {
			return
		}
		if herr != nil {
			t.Fatalf("ParseRecord accepted what ParseHeader rejects: %v", herr)
		}
		if rec.Seq != h.Seq || (rec.Prev != "") != h.HasPrev {
			t.Fatalf("header %+v disagrees with record seq %d prev %q", h, rec.Seq, rec.Prev)
		}
		if !rec.Kind.Valid() || rec.V != h.V || rec.V < ledger.MinFormatVersion || rec.V > ledger.FormatVersion {
			t.Fatalf("accepted kind %q version %d", rec.Kind, rec.V)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add("example.com/log\n42\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension line\n")
	f.Add("o\n01\nAAAA\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ledger.ParseCheckpoint(text)
		if err != nil {
			return
		}
		if got := c.Text(); got != text {
			t.Fatalf("accepted checkpoint does not round-trip:\n%q\n%q", text, got)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, err := note.GenerateKey(nil, "fuzz.example/log")
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	good, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: "fuzz.example/log", Size: 7}, signer)
	f.Add(good)
	f.Add([]byte("fuzz.example/log\n7\nAAAA\n\n— fuzz.example/log AAAA\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, n, err := ledger.OpenCheckpoint(msg, note.VerifierList(verifier))
		if err != nil {
			return
		}
		if len(n.Sigs) == 0 || c.Origin != "fuzz.example/log" {
			t.Fatalf("opened without a verified signature of the origin: %+v", n)
		}
		if !bytes.HasPrefix(msg, []byte(c.Text())) {
			t.Fatal("opened checkpoint text is not the signed text")
		}
	})
}

// Whatever the parameters, a value under a sensitive name never reaches the stored bytes.
func FuzzRedaction(f *testing.F) {
	f.Add(`{"a":1}`, "s3cr3t-value-123")
	f.Add(`[{"x":{"y":[1,2,{"z":null}]}}]`, "tok_abcdefgh")
	f.Add(`not json`, "secretsecret")
	e := newEnv(f, nil)
	l := e.open(f, func(o *ledger.Options) { o.HashKey = nil })
	f.Cleanup(func() { l.Close(context.Background()) })
	f.Fuzz(func(t *testing.T, params, secret string) {
		if len(secret) < 8 || bytes.Contains([]byte(params), []byte(secret)) {
			return
		}
		var v any
		if json.Unmarshal([]byte(params), &v) != nil {
			v = params
		}
		wrapped, err := json.Marshal(map[string]any{"payload": v, "nested": map[string]any{"api_key": secret}})
		if err != nil {
			return
		}
		r := decision(1)
		r.Params = wrapped
		seq, err := l.Append(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		e.st.Scan(context.Background(), seq, func(en ledger.Entry) error {
			// The parameters as stored (hashes and times elsewhere in the record may contain
			// any digits by chance, so only the parameters are searched).
			rec, err := ledger.ParseRecord(en.Data)
			if err != nil {
				t.Fatal(err)
			}
			enc, _ := json.Marshal(secret)
			if bytes.Contains(rec.Params, []byte(secret)) || bytes.Contains(rec.Params, enc[1:len(enc)-1]) {
				t.Fatalf("secret %q stored: %s", secret, rec.Params)
			}
			return errStop
		})
	})
}

var errStop = context.Canceled

// The record encoder must write exactly what encoding/json.Marshal writes — the record format is
// defined as that — whatever the strings (HTML characters, U+2028, invalid UTF-8), numbers, times
// and parameters hold.
func FuzzEncodeMatchesStdlib(f *testing.F) {
	f.Add("read_file", "<b>&</b> \u2028 ok", 0.75, []byte(`{"path":"/tmp/x","n":[1,2.5e10,-0]}`), int64(1700000000123456789), 3)
	f.Add("t\xff", "\x00\x1f\"\\", 1e21, []byte(` { "a" : "\u00e9" } `), int64(-1), 0)
	f.Add("", "", 5e-324, []byte(`null`), int64(0), 9)
	f.Fuzz(func(t *testing.T, tool, text string, score float64, params []byte, nanos int64, level int) {
		at := time.Unix(0, nanos).UTC()
		r := &ledger.Record{V: ledger.FormatVersion, Seq: 3, Prev: strings.Repeat("ab", 32), Time: at, Kind: ledger.KindDecision,
			DecisionID: text, Tool: tool, Agent: &ledger.Principal{ID: text, Verified: true, Method: tool},
			ParamsSize: len(params), Redacted: []string{text}, Decision: "allow", Reason: text, Message: text,
			ThreatLevel: threat.Level(level % 6), Policy: &ledger.Policy{Rule: tool, Conditions: []ledger.Condition{{Expr: text, Result: true, Detail: tool}}},
			Findings:  []ledger.Finding{{Kind: tool, Severity: threat.Level(level % 5), Path: text, Evidence: text, Score: score}},
			Anomalies: []ledger.Anomaly{{Signal: text, Score: score}},
			Approval:  &ledger.Approval{ID: tool, Comment: text, RequestedAt: &at, WaitMS: nanos}}
		if json.Valid(params) {
			r.Params = params
		}
		got, err := ledger.Encode(r)
		want, stdErr := json.Marshal(r)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("Encode error %v, json.Marshal error %v", err, stdErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("Encode differs from json.Marshal:\n got %s\nwant %s", got, want)
		}
	})
}

// The signing time a checkpoint carries is read from an extension line: one accepted is the
// canonical UTC form of the time returned, and there is exactly one.
func FuzzCheckpointSignedAt(f *testing.F) {
	f.Add("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 2026-12-07T01:02:03.123456789Z\n")
	f.Add("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 2026-12-07T01:02:03Z\nother\n")
	f.Add("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 2026-12-07T02:02:03+01:00\n")
	f.Add("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 2026-12-07T01:02:03.10Z\n")
	f.Add("o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 1\ntime 2\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ledger.ParseCheckpoint(text)
		if err != nil {
			return
		}
		ts, ok, err := c.SignedAt()
		if err != nil || !ok {
			return
		}
		n := 0
		for _, e := range c.Extra {
			if strings.HasPrefix(e, "time ") {
				n++
				if want := "time " + ts.UTC().Format(time.RFC3339Nano); e != want {
					t.Fatalf("accepted %q, canonical form %q", e, want)
				}
			}
		}
		if n != 1 {
			t.Fatalf("accepted %d time lines", n)
		}
	})
}

// stdlibParseRecord is ParseRecord's decoding as encoding/json reads a record, the reading the
// format is defined by: ParseRecord must accept and build exactly what it does.
func stdlibParseRecord(data []byte) (*ledger.Record, error) {
	if _, err := ledger.ParseHeader(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r ledger.Record
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the record")
	}
	if r.V < ledger.MinFormatVersion || r.V > ledger.FormatVersion || !r.Kind.Valid() {
		return nil, errors.New("version or kind")
	}
	if r.V < ledger.FormatVersion && r.Inputs != nil {
		return nil, errors.New("inputs in an older format version")
	}
	if h, _ := ledger.ParseHeader(data); r.V != h.V {
		return nil, errors.New("header fields repeated with other values")
	}
	if h, _ := ledger.ParseHeader(data); r.Seq != h.Seq || (r.Prev != "") != h.HasPrev {
		return nil, errors.New("header fields repeated with other values")
	}
	return &r, nil
}

// ParseRecord decodes with segmentio's decoder (it runs once per committed record for the alert
// rules); what it accepts and the record it builds must be encoding/json's, whatever the bytes:
// keys in another case, repeated keys, invalid UTF-8, escapes, odd numbers, trailing space.
func FuzzParseRecordMatchesStdlib(f *testing.F) {
	r := decision(3)
	r.Seq, r.Prev = 3, strings.Repeat("0f", 32)
	r.Findings = []ledger.Finding{{Kind: "sql", Severity: threat.High, Path: "$.q", Evidence: "<b>\u2028", Score: 0.5}}
	at := time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC)
	r.Approval = &ledger.Approval{ID: "apr", Approvers: []string{"a", "b"}, RequestedAt: &at, WaitMS: 5}
	r.Session = &ledger.Session{ID: "s", Labels: []string{"pii"}}
	r.Shadow = &ledger.Shadow{Version: "v", Decision: "deny"}
	good, _ := ledger.Encode(r)
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), " \n\t"...))
	f.Add(append(append([]byte(nil), good...), " {}"...))
	f.Add(bytes.Replace(good, []byte(`"tool":`), []byte(`"TOOL":`), 1))
	f.Add(bytes.Replace(good, []byte(`"tool":"db.query"`), []byte(`"tool":"a","tool":"b\xff\u00e9\ud800"`), 1))
	f.Add(bytes.Replace(good, []byte(`"decision":"allow"`), []byte(`"decision":"allow","evil":1`), 1))
	f.Add(bytes.Replace(good, []byte(`"limit":10`), []byte(`"limit":1e400,"x":[-0.0e-5,{"":null}]`), 1))
	f.Add(bytes.Replace(good, []byte(`"params_size"`), []byte(`"threat_level":"high","params_size"`), 1))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00Z","kind":"startup","recovery":{"reason":"x","found_size":-1}}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"1970-01-01T00:00:00+01:00","kind":"alert","alert":{"rule":"r","severity":"s","count":1.5}}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":null,"kind":"startup","agent":null,"params":null}`))
	f.Add([]byte(`{"v":2,"seq":0,"prev":"","time":null,"kind":"startup","agent":null,"params":null}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":null,"kind":"decision","inputs":{}}`))
	f.Add([]byte(`{"v":2,"seq":0,"prev":"","time":null,"kind":"decision","v":1}`))
	// The times, read by time.Time's parser: in an approval given twice (merged), in keys of
	// another case, null, and in forms segmentio's own time parser accepts and time.Time's does not.
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"2026-12-07T01:02:03Z","kind":"approval","approval":{"id":"a","requested_at":"2026-12-07T01:02:03Z"},"APPROVAL":{"Resolved_At":"2026-12-07T01:02:04+02:00","requested_at":null}}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","Time":"2026-12-07T01:02:03.5Z","kind":"alert","alert":{"rule":"r","severity":"s","count":1,"FIRST":"2026-12-07T01:02:03Z","last":"2026-12-07T01:02:03Z"},"alert":{"last":null}}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"2026-12-07T24:00:00Z","kind":"startup"}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"2026-12-07t01:02:03z","kind":"startup"}`))
	f.Add([]byte(`{"v":1,"seq":0,"prev":"","time":"2026-12-07T01:02:03Z","kind":"alert","alert":{"first":"2026-12-07T01:02:03+24:00"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ledger.ParseRecord(data)
		want, stdErr := stdlibParseRecord(data)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("ParseRecord error %v, encoding/json error %v\n%q", err, stdErr, data)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseRecord built\n%#v\nencoding/json built\n%#v", got, want)
		}
	})
}
