package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// object is a JSON object whose members stay raw: the gateway rewrites only the members it
// owns and passes every other member (including ones added by providers later) through.
type object map[string]json.RawMessage

var errNotObject = errors.New("not a JSON object")

func parseObject(b []byte) (object, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, errNotObject
	}
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	return o, nil
}

func (o object) has(key string) bool {
	v, ok := o[key]
	return ok && !isNull(v)
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(bytes.TrimSpace(v)) == "null" }

// str returns member key if it is a JSON string.
func (o object) str(key string) (string, bool) {
	v, ok := o[key]
	if !ok || len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// int returns member key if it is a JSON integer.
func (o object) int(key string) (int, bool) {
	v, ok := o[key]
	if !ok {
		return 0, false
	}
	var n int
	if json.Unmarshal(v, &n) != nil {
		return 0, false
	}
	return n, true
}

// obj returns member key as an object; absent or null gives nil, nil.
func (o object) obj(key string) (object, error) {
	v, ok := o[key]
	if !ok || isNull(v) {
		return nil, nil
	}
	m, err := parseObject(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return m, nil
}

// objs returns member key as an array of objects; absent or null gives nil, nil.
func (o object) objs(key string) ([]object, error) {
	v, ok := o[key]
	if !ok || isNull(v) {
		return nil, nil
	}
	return parseObjects(v)
}

func parseObjects(v json.RawMessage) ([]object, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(v, &raws); err != nil {
		return nil, err
	}
	out := make([]object, len(raws))
	for i, r := range raws {
		m, err := parseObject(r)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

// set marshals v into member key.
func (o object) set(key string, v any) {
	o[key] = mustMarshal(v)
}

func (o object) bytes() []byte { return mustMarshal(map[string]json.RawMessage(o)) }

// arguments validates tool-call arguments from the model: a JSON object, returned compacted.
// Empty text means "no arguments" ({}), which OpenAI-compatible servers send for tools
// without parameters. Anything else that is not an object is refused.
func arguments(text []byte) (json.RawMessage, bool) {
	t := bytes.TrimSpace(text)
	if len(t) == 0 {
		return json.RawMessage(`{}`), true
	}
	if t[0] != '{' || !json.Valid(t) {
		return nil, false
	}
	var buf bytes.Buffer
	if json.Compact(&buf, t) != nil {
		return nil, false
	}
	return buf.Bytes(), true
}
