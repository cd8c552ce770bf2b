package server

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/identity"
	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

// batchCall is the shape a batch call had when it was decoded by the strict struct decoder: a
// decide request without the agent (the batch's), wait_seconds (a batch does not long-poll) and
// session_id. decodeCall must read every body as that decoder did.
type batchCall struct {
	Tool       string                 `json:"tool"`
	Params     json.RawMessage        `json:"params"`
	UserToken  string                 `json:"user_token,omitempty"`
	User       *identity.AssertedUser `json:"user,omitempty"`
	ApprovalID string                 `json:"approval_id,omitempty"`
	RequestID  string                 `json:"request_id,omitempty"`
	Context    map[string]string      `json:"context,omitempty"`
}

var decodeSeeds = []string{
	`{"tool":"t","params":{"a":[1,2.50,{"b":null}],"s":"x\u00e9"}}`,
	` { "tool" : "t" , "params" : { "a" : 1 } } `,
	`{"tool":"t"}`, `{"tool":null}`, `{"tool":"t","params":null}`, `{"tool":"t","params":[1]}`, `{"tool":"t","params":"x"}`,
	`{"\u0074ool":"t","params":{}}`, `{"Tool":"t"}`, `{"tool":"t","TOOL":"u"}`, `{"tool":"t","tool":"u"}`,
	`{"tool":"t","params":{"limit":1,"limit":2}}`, `{"tool":"t","params":{"limit":1,"LIMIT":2}}`,
	`{"tool":5}`, `{"tool":["t"]}`, `{"tool":"t","extra":1}`, `{"tool":"t"} {}`, `{"tool":"t"}x`, `{"tool":`, ``, `[]`, `"t"`,
	`{"tool":"t","agent_id":"a","session_id":"s","wait_seconds":3,"approval_id":"ap","request_id":"r","user_token":"tok"}`,
	`{"tool":"t","wait_seconds":1.0}`, `{"tool":"t","wait_seconds":"1"}`, `{"tool":"t","wait_seconds":null}`, `{"tool":"t","wait_seconds":99999999999999999999}`,
	`{"tool":"t","user":{"id":"u","email":"u@example.com"}}`, `{"tool":"t","user":{"id":"u","bogus":1}}`, `{"tool":"t","user":null}`, `{"tool":"t","user":"u"}`,
	`{"tool":"t","context":{"a":"b"}}`, `{"tool":"t","context":{"a":1}}`, `{"tool":"t","context":{"a":"b","a":"c"}}`, `{"tool":"t","context":null}`,
	`{"tool":"t","agent_id":7}`, `{"tool":"t","session_id":{}}`, `{"tool":"t","params":{"a":"\ud800"}}`,
}

// decodeCall reads every body as the strict struct decoder read it: the same refusals, with
// the same code, and the same request. Its parameters' value is DecodeObject's reading of
// their text (the guard's own), for objects, and absent otherwise.
func FuzzDecodeCallMatchesStrictDecode(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, batch bool) {
		got, params, err := decodeCall(raw, batch)
		var want decideRequest
		var wantErr error
		if batch {
			var c batchCall
			wantErr = strictDecode(raw, &c)
			want = decideRequest{Tool: c.Tool, Params: c.Params, UserToken: c.UserToken, User: c.User, ApprovalID: c.ApprovalID, RequestID: c.RequestID, Context: c.Context}
		} else {
			wantErr = strictDecode(raw, &want)
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%q (batch %v): error %v, the strict decoder's %v", raw, batch, err, wantErr)
		}
		if err != nil {
			if bodyCode(err) != bodyCode(wantErr) {
				t.Fatalf("%q (batch %v): code %s (%v), the strict decoder's %s (%v)", raw, batch, bodyCode(err), err, bodyCode(wantErr), wantErr)
			}
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%q (batch %v): read otherwise (-strict +decodeCall):\n%s", raw, batch, diff)
		}
		obj, objErr := jsonx.DecodeObject(got.Params)
		switch {
		case params == nil:
			if len(got.Params) != 0 && objErr == nil {
				t.Fatalf("%q: params %s are an object but no value came with them", raw, got.Params)
			}
		case objErr != nil:
			t.Fatalf("%q: a value came with params %s that DecodeObject refuses: %v", raw, got.Params, objErr)
		default:
			if diff := cmp.Diff(obj, params); diff != "" {
				t.Fatalf("%q: params value differs from DecodeObject's (-DecodeObject +decodeCall):\n%s", raw, diff)
			}
		}
	})
}

// BenchmarkDecodeCall reads the 1 KiB decide body bench/load sends, as handleDecide does.
func BenchmarkDecodeCall(b *testing.B) {
	body := []byte(`{"tool":"fetch_customer_names","params":{"fields":["name","country","renewal_date","account_manager","plan","seats"],"limit":250,"notes":"` +
		"Quarterly review list for the customer success team. Quarterly review list for the customer success team. Quarterly review list for the customer success team. " +
		`","segment":"enterprise accounts renewed in the last quarter","sort":{"by":"renewal_date","order":"desc"}}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, params, err := decodeCall(body, false); err != nil || params == nil {
			b.Fatal(err)
		}
	}
}

// TestDecodedNamesDoNotHoldTheBody: the tool, agent and session names outlive the request (the
// policy's name cache, behaviour windows, sessions), so they must not be slices of the body's
// one decoded copy — each would keep a body of up to the size limit alive for as long as the
// name is remembered.
func TestDecodedNamesDoNotHoldTheBody(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	body := []byte(`{"agent_id":"agent-1","tool":"read_file","session_id":"s-1","request_id":"r-1","params":{"blob":"` + big + `"}}`)
	req, params, err := decodeCall(body, false)
	if err != nil {
		t.Fatal(err)
	}
	blob := params["blob"].(string)
	// The decoded copy of the body spans at most len(body) bytes on either side of the blob.
	lo := uintptr(unsafe.Pointer(unsafe.StringData(blob))) - uintptr(len(body))
	hi := lo + 2*uintptr(len(body))
	for name, s := range map[string]string{"tool": req.Tool, "agent_id": req.AgentID, "session_id": req.SessionID, "request_id": req.RequestID} {
		if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p >= lo && p < hi {
			t.Errorf("%s %q is a slice of the decoded body: it keeps %d bytes alive", name, s, len(body))
		}
	}
	runtime.KeepAlive(blob)
}

// bodySeeds add to decodeSeeds bodies that the UTF-8 and depth checks refuse, alone or with
// another defect that the decoder would name otherwise.
var bodySeeds = []string{
	"{\"tool\":\"t\xff\"}", "{\"tool\":\"t\"}\xff", "\xff{\"tool\":\"t\"}", "{\"tool\":\"t\",\"tool\":\"\xc3\"}",
	`{"tool":"t","params":{"a":{"b":{"c":{}}}}}`, `{"tool":"t","params":{"a":[[[[1]]]]}}`, `{"tool":"t","params":{"a":{"b":{"c":{}}}},"tool":"u"}`,
	`{"tool":"t","params":{"a":{"b":{"c":{"d":1,"d":2}}}}}`, `{"tool":"t","params":[[[[[`, `{"tool":"t","params":{"s":"[[[[[["}}`,
	"{\"tool\":\"t\",\"params\":{\"a\":[[[[\xff]]]]}}", `{"calls":[{"tool":"t","params":{"a":{"b":{}}}}]}`, `{"calls":[],"calls":[]}`,
	`{"calls":[{"tool":"t"}],"agent_id":"a"}`, `{"calls":[{"tool":"t","tool":"u"}]}`, `{"calls":[{"tool":"t"}]} x`,
}

// readDecide and readBatch read each body in one pass, the checks only after it refused: they
// must refuse exactly what the checks and then the decoder refused, with the same code and
// message, and read the rest the same.
func FuzzReadBodyMatchesChecksThenDecode(f *testing.F) {
	for _, s := range append(slices.Clone(decodeSeeds), bodySeeds...) {
		for _, d := range []int{3, 4, 5, 64} {
			f.Add([]byte(s), d)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, maxDepth int) {
		maxDepth = 1 + (maxDepth%64+64)%64
		req, params, rf := readDecide(body, maxDepth)
		want := bodyRefusal(body, maxDepth)
		var wantReq decideRequest
		var wantParams map[string]any
		if want == nil {
			var err error
			if wantReq, wantParams, err = decodeCall(body, false); err != nil {
				want = &refusal{bodyCode(err), err.Error()}
			}
		}
		if diff := cmp.Diff(want, rf, cmp.AllowUnexported(refusal{})); diff != "" {
			t.Fatalf("%q (max depth %d): decide refusal differs (-checks then decode +one pass):\n%s", body, maxDepth, diff)
		}
		if diff := cmp.Diff(wantReq, req); diff != "" {
			t.Fatalf("%q: read otherwise (-checks then decode +one pass):\n%s", body, diff)
		}
		if diff := cmp.Diff(wantParams, params); diff != "" {
			t.Fatalf("%q: params read otherwise (-checks then decode +one pass):\n%s", body, diff)
		}

		env, rf := readBatch(body, maxDepth)
		want = bodyRefusal(body, maxDepth)
		var wantEnv batchRequest
		if want == nil {
			if err := jsonx.DecodeEnvelope(body, &wantEnv); err != nil {
				err = fmt.Errorf("invalid JSON body: %w", err)
				want, wantEnv = &refusal{bodyCode(err), err.Error()}, batchRequest{}
			}
		}
		if diff := cmp.Diff(want, rf, cmp.AllowUnexported(refusal{})); diff != "" {
			t.Fatalf("%q (max depth %d): batch refusal differs (-checks then decode +one pass):\n%s", body, maxDepth, diff)
		}
		if diff := cmp.Diff(wantEnv, env); diff != "" {
			t.Fatalf("%q: envelope read otherwise (-checks then decode +one pass):\n%s", body, diff)
		}
	})
}

// A body the one pass refuses, and the UTF-8 and depth checks pass, is decoded once: its
// refusal costs one decode, not a second decode that can only reach the same error. Counted in
// allocations, which a decode makes in proportion to what it reads (and timing would not
// measure robustly): a large body refused at its end costs readDecide or readBatch about what
// the one pass costs alone, not twice that.
func TestRefusedBodyIsDecodedOnce(t *testing.T) {
	decide, batch := refusedAtTheEnd(5000)

	const maxDepth = 64
	onePass := testing.AllocsPerRun(3, func() { _, _, _ = decodeCallDepth(decide, false, maxDepth) })
	read := testing.AllocsPerRun(3, func() {
		if _, _, rf := readDecide(decide, maxDepth); rf == nil || rf.code != "duplicate_key" {
			t.Fatalf("decide body: refusal %+v, want duplicate_key", rf)
		}
	})
	if read > onePass*5/4 {
		t.Errorf("refusing a decide body made %.0f allocations; its one pass alone makes %.0f", read, onePass)
	}

	onePass = testing.AllocsPerRun(3, func() { _ = jsonx.DecodeEnvelopeDepth(batch, &batchRequest{}, maxDepth) })
	read = testing.AllocsPerRun(3, func() {
		if _, rf := readBatch(batch, maxDepth); rf == nil || rf.code != "duplicate_key" {
			t.Fatalf("batch body: refusal %+v, want duplicate_key", rf)
		}
	})
	if read > onePass*5/4 {
		t.Errorf("refusing a batch body made %.0f allocations; its one pass alone makes %.0f", read, onePass)
	}
}

// refusedAtTheEnd returns a decide body and a batch body of n members each, both refused for a
// key repeated at their end: what a sender makes the gateway read in full before refusing it.
func refusedAtTheEnd(n int) (decide, batch []byte) {
	var b strings.Builder
	b.WriteString(`{"tool":"t","params":{`)
	for i := range n {
		fmt.Fprintf(&b, `"k%d":"value %d",`, i, i)
	}
	b.WriteString(`"k0":"again"}}`)
	batch = []byte(`{"calls":[` + strings.Repeat(`{"tool":"t","params":{"a":"b"}},`, n) + `{}],"calls":[]}`)
	return []byte(b.String()), batch
}

// BenchmarkReadRefusedBody: the cost of refusing a body of about 1 MB for a key repeated at its
// end, before authentication.
func BenchmarkReadRefusedBody(b *testing.B) {
	decide, batch := refusedAtTheEnd(50000)
	b.Run("decide", func(b *testing.B) {
		b.SetBytes(int64(len(decide)))
		for b.Loop() {
			if _, _, rf := readDecide(decide, 64); rf == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		b.SetBytes(int64(len(batch)))
		for b.Loop() {
			if _, rf := readBatch(batch, 64); rf == nil {
				b.Fatal("accepted")
			}
		}
	})
}
