package llm

import (
	"container/list"
	"sync"
	"time"
)

// A Responses conversation continued with previous_response_id lives at the provider: it stored
// every function_call the model proposed, including the ones the gateway removed, and refuses
// the next turn ("No tool output found for function call …") unless it carries an output for
// each. The agent never saw those calls, so it cannot answer them. The gateway remembers, per
// response, the calls it removed and their notices, and adds the matching output item — the
// notice — to the next request that continues from that response, unless the agent answered
// the call itself.
//
// The memory is bounded (Config.RememberRemoved calls in all, removedMaxCalls per response, each
// kept removedTTL; a notice is at most a few hundred bytes) and keyed by agent as well as response ID: an agent naming another's
// response gets nothing added. It is local to one gateway process: a turn that reaches another
// replica is sent as the agent wrote it, and the provider's own error comes back.

const (
	removedTTL      = 24 * time.Hour
	removedMaxCalls = 128
)

// removedCall is one call removed from a Responses output.
type removedCall struct {
	itemType string // function_call or custom_tool_call
	callID   string
	notice   string
}

type removedEntry struct {
	key     string
	calls   []removedCall
	expires time.Time
}

// removedCalls is a bounded, expiring map from (agent, response ID) to the calls removed.
type removedCalls struct {
	mu    sync.Mutex
	max   int // calls, over every response
	total int
	ttl   time.Duration
	now   func() time.Time
	order *list.List // oldest first
	byKey map[string]*list.Element
}

func newRemovedCalls(maxEntries int, ttl time.Duration) *removedCalls {
	return &removedCalls{max: maxEntries, ttl: ttl, now: time.Now, order: list.New(), byKey: map[string]*list.Element{}}
}

func removedKey(agentID, responseID string) string { return agentID + "\x00" + responseID }

func (r *removedCalls) put(agentID, responseID string, calls []removedCall) {
	if r.max <= 0 || responseID == "" || len(calls) == 0 {
		return
	}
	if len(calls) > removedMaxCalls {
		calls = calls[:removedMaxCalls]
	}
	if len(calls) > r.max {
		calls = calls[:r.max]
	}
	k := removedKey(agentID, responseID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.byKey[k]; ok {
		r.drop(el)
	}
	r.byKey[k] = r.order.PushBack(&removedEntry{key: k, calls: calls, expires: r.now().Add(r.ttl)})
	r.total += len(calls)
	for r.total > r.max {
		r.drop(r.order.Front())
	}
}

func (r *removedCalls) drop(el *list.Element) {
	e := el.Value.(*removedEntry)
	r.order.Remove(el)
	delete(r.byKey, e.key)
	r.total -= len(e.calls)
}

func (r *removedCalls) get(agentID, responseID string) []removedCall {
	k := removedKey(agentID, responseID)
	r.mu.Lock()
	defer r.mu.Unlock()
	el, ok := r.byKey[k]
	if !ok {
		return nil
	}
	e := el.Value.(*removedEntry)
	if r.now().After(e.expires) {
		r.drop(el)
		return nil
	}
	return e.calls
}

// noteRemoved remembers a Responses call this model call removed, when the provider will expect
// an output for it on the next turn.
func (mc *modelCall) noteRemoved(item object, callID, notice string) {
	typ, _ := item.str("type")
	if callID == "" || (typ != "function_call" && typ != "custom_tool_call") {
		return
	}
	if mc.removed == nil {
		mc.removed = map[string]string{}
	}
	if _, dup := mc.removed[callID]; !dup {
		mc.removedOrder = append(mc.removedOrder, removedCall{itemType: typ, callID: callID, notice: notice})
	}
	mc.removed[callID] = notice
}

// rememberRemoved stores the calls removed from a Responses response under its ID.
func (mc *modelCall) rememberRemoved(resp object) {
	if mc.format != Responses || len(mc.removedOrder) == 0 {
		return
	}
	id, _ := resp.str("id")
	mc.g.removed.put(mc.caller.AgentID, id, mc.removedOrder)
}

// continueConversation adds to a request that continues from previous_response_id the outputs of
// the calls the gateway removed from that response, unless the input answers them already.
func (mc *modelCall) continueConversation(req object) (bool, error) {
	prev, _ := req.str("previous_response_id")
	if prev == "" {
		return false, nil
	}
	calls := mc.g.removed.get(mc.caller.AgentID, prev)
	if len(calls) == 0 {
		return false, nil
	}
	var items []object
	if s, ok := req.str("input"); ok {
		items = []object{{"type": mustMarshal("message"), "role": mustMarshal("user"), "content": mustMarshal(s)}}
	} else {
		var err error
		if items, err = req.objs("input"); err != nil {
			return false, badRequest("input: must be a string or an array of input items")
		}
	}
	answered := map[string]bool{}
	for _, it := range items {
		if id, _ := it.str("call_id"); id != "" {
			answered[id] = true
		}
	}
	var add []object
	for _, c := range calls {
		if answered[c.callID] {
			continue
		}
		add = append(add, object{"type": mustMarshal(c.itemType + "_output"), "call_id": mustMarshal(c.callID), "output": mustMarshal(c.notice)})
	}
	if len(add) == 0 {
		return false, nil
	}
	req.set("input", append(add, items...))
	return true, nil
}
