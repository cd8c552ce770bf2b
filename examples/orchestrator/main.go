// Command orchestrator is a minimal agent orchestrator that runs its tools itself and asks
// Portcullis before every call: the pattern for frameworks that do not speak MCP.
//
//	PORTCULLIS_URL=http://127.0.0.1:8080 PORTCULLIS_API_KEY=pcl_... go run ./examples/orchestrator
//
// The "model" here is a fixed list of proposed tool calls — among them one the policy denies and
// one carrying an injection — so the output shows each kind of decision.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portcullis-ai/portcullis/sdk"
)

// Call is one tool call the model proposed.
type Call struct {
	Tool   string
	Params map[string]any
}

// Tools are the orchestrator's own tool implementations.
var Tools = map[string]func(map[string]any) (any, error){
	"fetch_customer_names": func(p map[string]any) (any, error) {
		return map[string]any{"names": []string{"Ada Lovelace", "Grace Hopper"}}, nil
	},
	"delete_file": func(p map[string]any) (any, error) { return nil, os.Remove(fmt.Sprint(p["path"])) },
}

// Run asks Portcullis about each call, runs only what it allows, reports every outcome and hands
// the model only results that passed inspection. It writes one line per call to w.
func Run(ctx context.Context, c *sdk.Client, calls []Call, w io.Writer) error {
	for _, call := range calls {
		d, err := c.Decide(ctx, sdk.DecideRequest{Tool: call.Tool, Params: call.Params})
		if err != nil {
			// Fail closed: no answer is a denial.
			fmt.Fprintf(w, "%s: not run (%v)\n", call.Tool, err)
			continue
		}
		switch {
		case d.Pending():
			fmt.Fprintf(w, "%s: waiting for approval %s\n", call.Tool, d.ApprovalID)
			continue
		case !d.Allowed():
			fmt.Fprintf(w, "%s: %s (%s)\n", call.Tool, d.Decision, d.Message)
			continue
		}
		tool, ok := Tools[call.Tool]
		if !ok {
			fmt.Fprintf(w, "%s: allowed but not implemented here\n", call.Tool)
			continue
		}
		start := time.Now()
		result, runErr := tool(call.Params)
		o := sdk.OutcomeRequest{DecisionID: d.DecisionID, Ran: true, Success: runErr == nil, DurationMS: time.Since(start).Milliseconds(), Result: result}
		if runErr != nil {
			o.Error = runErr.Error()
		}
		verdict, err := c.Outcome(ctx, o)
		if err != nil || verdict.Action == "block" {
			fmt.Fprintf(w, "%s: ran, result withheld from the model\n", call.Tool)
			continue
		}
		shown := verdict.Result
		if verdict.Action == "pass" {
			shown, _ = json.Marshal(result)
		}
		fmt.Fprintf(w, "%s: %s %s\n", call.Tool, d.Decision, shown)
	}
	return nil
}

func main() {
	url := os.Getenv("PORTCULLIS_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	c := sdk.New(url, sdk.WithAPIKey(os.Getenv("PORTCULLIS_API_KEY")))
	calls := []Call{
		{"fetch_customer_names", map[string]any{"limit": 10}},
		{"delete_file", map[string]any{"path": "/reports/q3.pdf"}},
		{"fetch_customer_names", map[string]any{"limit": 10, "filter": "' OR 1=1; DROP TABLE customers; --"}},
	}
	if err := Run(context.Background(), c, calls, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
