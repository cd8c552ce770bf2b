package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLLMGatewayOverhead measures what the LLM gateway adds, against the real binary (policy,
// inspection, the durable SQLite ledger) and the fake provider, in one run, interleaving direct
// and gateway requests: time to first token of a streamed text answer, and the whole reply of a
// non-streamed answer carrying one allowed tool call (decided and recorded before it is
// forwarded). It measures; it asserts only that both paths answer. Run with
//
//	PORTCULLIS_BENCH_LLM=400 go test -run TestLLMGatewayOverhead -v ./e2e
func TestLLMGatewayOverhead(t *testing.T) {
	n := 0
	if _, err := fmt.Sscan(os.Getenv("PORTCULLIS_BENCH_LLM"), &n); err != nil || n <= 0 {
		t.Skip("a measurement, not a check: set PORTCULLIS_BENCH_LLM=<requests per case> to run it")
	}
	fake := newFakeProvider(t)
	dir, agentKey, _ := initData(t)
	writePolicy(t, dir, llmPolicy)
	base := fake.srv.URL + "/v1"
	appendConfig(t, dir, "llm:\n  upstreams:\n"+
		"    chat_completions: {base_url: \""+base+"\", api_key_env: FAKE_PROVIDER_KEY}\n"+
		"    responses: {base_url: \""+base+"\", api_key_env: FAKE_PROVIDER_KEY}\n"+
		"    messages: {base_url: \""+base+"\", api_key_env: FAKE_PROVIDER_KEY}\n")
	d := startServeEnv(t, dir, []string{"FAKE_PROVIDER_KEY=" + fakeProviderKey})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

	paths := map[string]string{"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}
	bodies := map[string]string{
		"chat":      `{"model":%q,"stream":%t,"messages":[{"role":"user","content":"What is the weather in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`,
		"responses": `{"model":%q,"stream":%t,"input":"What is the weather in Paris?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}]}`,
		"messages":  `{"model":%q,"stream":%t,"max_tokens":256,"messages":[{"role":"user","content":"What is the weather in Paris?"}],"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`,
	}
	// one sends a request and returns the time to the first text delta (streams) and to the end.
	one := func(api, url, key, model string, stream bool) (first, total time.Duration) {
		req, _ := http.NewRequest(http.MethodPost, url+paths[api], strings.NewReader(fmt.Sprintf(bodies[api], model, stream)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Api-Key", key)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d", api, url, resp.StatusCode)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if first == 0 && strings.HasPrefix(l, "data: ") && (strings.Contains(l, `"content":"done"`) || strings.Contains(l, `"text":"done"`) || strings.Contains(l, `"delta":"done"`)) {
				first = time.Since(start)
			}
		}
		return first, time.Since(start)
	}
	pct := func(d []time.Duration, p int) time.Duration {
		slices.Sort(d)
		return d[len(d)*p/100]
	}
	for _, api := range apis {
		var ttft, reply [2][]time.Duration // [direct, gateway]
		for range 20 {                     // warm both paths
			one(api, fake.srv.URL, "sk-direct", "hello", true)
			one(api, d.url, agentKey, "hello", true)
		}
		for range n {
			for i, target := range [][2]string{{fake.srv.URL, "sk-direct"}, {d.url, agentKey}} {
				f, _ := one(api, target[0], target[1], "hello", true)
				if f == 0 {
					t.Fatalf("%s: no text delta", api)
				}
				ttft[i] = append(ttft[i], f)
				_, tot := one(api, target[0], target[1], "weather", false)
				reply[i] = append(reply[i], tot)
			}
		}
		t.Logf("| %s | TTFT p50 %v / %v (+%v) | TTFT p90 %v / %v | reply p50 %v / %v (+%v) | reply p90 %v / %v |", api,
			pct(ttft[0], 50), pct(ttft[1], 50), pct(ttft[1], 50)-pct(ttft[0], 50), pct(ttft[0], 90), pct(ttft[1], 90),
			pct(reply[0], 50), pct(reply[1], 50), pct(reply[1], 50)-pct(reply[0], 50), pct(reply[0], 90), pct(reply[1], 90))
	}
}
