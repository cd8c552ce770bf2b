package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// approveAll approves every pending request the approver sees until ctx ends, as a person
// watching the queue would; it returns the IDs it approved.
func approveAll(ctx context.Context, t *testing.T, url, approverKey string) func() []string {
	var mu sync.Mutex
	var approved []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/approvals?state=pending", nil)
			req.Header.Set("Authorization", "Bearer "+approverKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				var list struct {
					Approvals []struct {
						ID string `json:"id"`
					} `json:"approvals"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&list)
				resp.Body.Close()
				for _, a := range list.Approvals {
					req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/approvals/"+a.ID+"/approve", strings.NewReader(`{"comment":"framework test"}`))
					req.Header.Set("Authorization", "Bearer "+approverKey)
					if resp, err := http.DefaultClient.Do(req); err == nil {
						if resp.StatusCode == 200 {
							mu.Lock()
							approved = append(approved, a.ID)
							mu.Unlock()
						}
						resp.Body.Close()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return approved
	}
}

// Each framework's own agent loop, with its own mock model, against the real binary: the model
// proposes four calls at once and every tool is wrapped by the TypeScript client's integration.
// A denied call never runs and the model reads the denial; a held call waits, is approved by a
// person, runs once and its result passes; an injected result is withheld; a result with an
// email address reaches the model redacted.
func TestFrameworkIntegrations(t *testing.T) {
	node := needNode(t)
	if _, err := os.Stat("frameworks/node_modules"); err != nil {
		t.Skip("e2e/frameworks/node_modules is absent: npm ci --prefix e2e/frameworks (make test does it when npm is present)")
	}
	for _, fw := range []string{"ai", "langchain", "openai-agents"} {
		t.Run(fw, func(t *testing.T) {
			d, agentKey, approverKey, _, _ := sdkGateway(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stopApprover, cancelApprover := context.WithCancel(ctx)
			approvedIDs := approveAll(stopApprover, t, d.url, approverKey)
			cmd := exec.CommandContext(ctx, node, "scenario.mjs", fw)
			cmd.Dir = "frameworks"
			cmd.Env = append(os.Environ(), "PORTCULLIS_URL="+d.url, "PORTCULLIS_API_KEY="+agentKey)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			cancelApprover()
			approved := approvedIDs()
			if err != nil {
				t.Fatalf("%s: %v\n%s\n%s", fw, err, stdout.String(), stderr.String())
			}
			var got struct {
				Outputs    map[string]any `json:"outputs"`
				Ran        []string       `json:"ran"`
				NextPrompt string         `json:"next_prompt"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("output %q: %v\n%s", stdout.String(), err, stderr.String())
			}
			want := map[string]any{
				"c_injected": "portcullis: the tool result was withheld (it failed inspection)",
				"c_denied":   "portcullis: the call was denied (the tool is unavailable)",
				"c_held":     `{"names":["Grace"],"filter":"x' UNION SELECT card_number FROM payments --"}`,
				"c_redacted": "contact [REDACTED:email]",
			}
			if diff := cmpDiff(want, got.Outputs); diff != "" {
				t.Errorf("what the model got (-want +got):\n%s", diff)
			}
			if diff := cmpDiff([]string{"fetch_customer_names:10", "fetch_customer_names:3", "fetch_customer_names:5"}, got.Ran); diff != "" {
				t.Errorf("tools that ran (-want +got):\n%s", diff)
			}
			if len(approved) != 1 {
				t.Errorf("approved %v, want the one held call", approved)
			}
			for _, secret := range []string{"attacker@evil.example", "ada@example.com", "Ignore all previous"} {
				if strings.Contains(got.NextPrompt, secret) {
					t.Errorf("the model's next prompt carries %q: %s", secret, got.NextPrompt)
				}
			}
		})
	}
}

// The TypeScript client's hand-written declarations type-check with the TypeScript compiler: the
// documented usage and the integrations over the frameworks' own tool types
// (frameworks/typecheck/usage.ts), and the declarations themselves with library checks on
// (core.ts).
func TestSDKTypeDeclarations(t *testing.T) {
	node := needNode(t)
	tsc := filepath.Join("frameworks", "node_modules", "typescript", "bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Skip("e2e/frameworks/node_modules is absent: npm ci --prefix e2e/frameworks (make test does it when npm is present)")
	}
	for _, project := range []string{"typecheck/tsconfig.json", "typecheck/tsconfig.core.json"} {
		cmd := exec.Command(node, "node_modules/typescript/bin/tsc", "-p", project)
		cmd.Dir = "frameworks"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("tsc -p %s: %v\n%s", project, err, out)
		}
	}
}
