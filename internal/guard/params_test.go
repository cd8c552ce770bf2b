package guard

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/inspect"
)

// countingInspector counts how the guard asks for a call's parameters to be inspected: as text
// (Inspect, which parses them) or as the guard's parse decoded them (InspectParams).
type countingInspector struct {
	Inspector
	text, parsed int
	last         map[string]any // the parameters InspectParams was last given
}

func (c *countingInspector) Inspect(ctx context.Context, tool string, dir inspect.Direction, raw json.RawMessage) (inspect.Result, error) {
	if dir == inspect.Request {
		c.text++
	}
	return c.Inspector.Inspect(ctx, tool, dir, raw)
}

func (c *countingInspector) InspectParams(ctx context.Context, tool string, raw json.RawMessage, params map[string]any) (inspect.Result, error) {
	c.parsed++
	c.last = params
	if params == nil {
		panic("InspectParams without the parsed parameters")
	}
	return c.Inspector.(interface {
		InspectParams(context.Context, string, json.RawMessage, map[string]any) (inspect.Result, error)
	}).InspectParams(ctx, tool, raw, params)
}

// capturingApprovals keeps the input of every approval request the guard opens.
type capturingApprovals struct {
	Approvals
	inputs []approval.Input
}

func (c *capturingApprovals) Request(ctx context.Context, in approval.Input) (approval.Request, error) {
	c.inputs = append(c.inputs, in)
	return c.Approvals.Request(ctx, in)
}

// TestParamsParsedOnce: a call's parameters are parsed once, by the guard, and every later step
// reads that parse: inspection is given the decoded object (it never parses the text), the
// approval engine is given the digest of its canonical encoding (never the text to digest
// again), and the ledger stores that canonical encoding (members in key order) rather than
// compacting the text again.
func TestParamsParsedOnce(t *testing.T) {
	h := newHarness(t, nil)
	ins := &countingInspector{Inspector: h.g.inspector}
	h.g.inspector = ins
	appr := &capturingApprovals{Approvals: h.g.approvals}
	h.g.approvals = appr
	ctx := context.Background()

	const params = `{ "title": "q3", "body": "numbers", "amount": 9007199254740993, "at": {"z": 1.50, "a": null} }`
	const canonical = `{"amount":9007199254740993,"at":{"a":null,"z":1.50},"body":"numbers","title":"q3"}`
	d := h.g.Check(ctx, h.call("save_note", params))
	if !d.Allowed() {
		t.Fatalf("save_note: %v %s %v", d.Action, d.Code, d.Err)
	}
	if ins.text != 0 || ins.parsed != 1 {
		t.Errorf("inspection: %d parses of the text, %d of the guard's parse; want 0 and 1", ins.text, ins.parsed)
	}
	if r := h.recordOf(t, d.ID, "decision"); string(r.Params) != canonical {
		t.Errorf("recorded params %s, want the canonical encoding of the guard's parse %s", r.Params, canonical)
	}
	if string(d.Params) != params {
		t.Errorf("the tool would run on %s, want the parameters as received", d.Params)
	}

	d = h.g.Check(ctx, h.call("wire_money", params))
	if !d.Pending() {
		t.Fatalf("wire_money: %v %s %v", d.Action, d.Code, d.Err)
	}
	want, err := approval.Digest(json.RawMessage(params))
	if err != nil {
		t.Fatal(err)
	}
	if len(appr.inputs) != 1 {
		t.Fatalf("%d approval requests, want 1", len(appr.inputs))
	}
	if in := appr.inputs[0]; in.Params != nil || in.ParamsDigest != want {
		t.Errorf("approval input: params %s (want none: the engine would digest them again), digest %s (want %s)", in.Params, in.ParamsDigest, want)
	}
	if ins.text != 0 {
		t.Errorf("inspection parsed the text of %d calls", ins.text)
	}
}

// A transport that decoded the whole request in one pass hands the guard the parameters' value
// with their text (Request.ParamsValue): the guard decides on that value instead of parsing the
// text again; without it, the guard parses the text.
func TestParamsValueIsNotParsedAgain(t *testing.T) {
	h := newHarness(t, nil)
	ins := &countingInspector{Inspector: h.g.inspector}
	h.g.inspector = ins
	const params = `{"title":"q3","body":"numbers"}`
	value := map[string]any{"title": "q3", "body": "numbers"}
	req := h.call("save_note", params)
	req.ParamsValue = value
	d := h.g.Check(context.Background(), req)
	if !d.Allowed() || string(d.Params) != params {
		t.Fatalf("save_note: %v %s %v, params %s", d.Action, d.Code, d.Err, d.Params)
	}
	if ins.parsed != 1 || reflect.ValueOf(ins.last).UnsafePointer() != reflect.ValueOf(value).UnsafePointer() {
		t.Errorf("inspection was given %v, want the transport's value itself", ins.last)
	}
	if d = h.g.Check(context.Background(), h.call("save_note", params)); !d.Allowed() || ins.last == nil ||
		reflect.ValueOf(ins.last).UnsafePointer() == reflect.ValueOf(value).UnsafePointer() {
		t.Errorf("without a value: %v %s, inspected %v", d.Action, d.Code, ins.last)
	}
}
