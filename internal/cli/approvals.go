package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portcullis-ai/portcullis/internal/app"
	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/identity"
)

// runApprovals implements `portcullis approvals`: the approver's side of CONSTRAIN, over the
// gateway's HTTP API, with the approver's own credential.
func runApprovals(ctx context.Context, std Stdio, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		approvalsUsage(std.Out)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "list":
		return approvalsList(ctx, std, args[1:])
	case "show":
		return approvalsShow(ctx, std, args[1:])
	case "approve":
		return approvalsResolve(ctx, std, args[1:], "approve")
	case "deny":
		return approvalsResolve(ctx, std, args[1:], "deny")
	case "watch":
		return approvalsWatch(ctx, std, args[1:])
	case "keys":
		return approverKeys(ctx, std, args[1:])
	}
	return unknownSub(std.Err, "approvals", args[0], approvalsSubs)
}

var approvalsSubs = []string{"list", "show", "approve", "deny", "watch", "keys"}

func approvalsUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  portcullis approvals list [--state pending|approved|denied|expired|consumed] [--json]
  portcullis approvals show ID [--wait SECONDS] [--format table|json]
  portcullis approvals approve ID [--comment TEXT]
  portcullis approvals deny ID [--comment TEXT]
  portcullis approvals watch [--interval 2s]
  portcullis approvals keys create --approver ID [--ttl DURATION] [--data DIR] [--config FILE]
  portcullis approvals keys list [--approver ID] [--json] [--data DIR]
  portcullis approvals keys revoke [--data DIR] KEY_ID

Every command but 'keys' talks to the gateway at --url (default $PORTCULLIS_URL, else the
listen address in --config or <--data>/portcullis.yaml, else http://127.0.0.1:8080) with the approver credential in --key (default $PORTCULLIS_APPROVER_KEY):
an approver API key or an approver login token (approvals.issuers). Agent keys and users' tokens are refused.
'keys' manages approver API keys in the data directory, apart from agents' keys: an approver
holds at most two active keys; a revoked key is refused by a running gateway at its next use.
'keys create' warns when the configuration does not declare the approver.
`)
}

// approverClient is the HTTP side of the approvals commands.
type approverClient struct {
	url, key string
	// data and config locate the configuration whose listen address is the default --url.
	data, config string
	http         *http.Client
}

func approverFlags(name string, std Stdio) (*flag.FlagSet, *approverClient) {
	fs := flag.NewFlagSet("approvals "+name, flag.ContinueOnError)
	fs.SetOutput(std.Err)
	c := &approverClient{http: &http.Client{Timeout: 5 * time.Minute}}
	fs.StringVar(&c.url, "url", os.Getenv("PORTCULLIS_URL"), "gateway base URL (default $PORTCULLIS_URL, else the configuration's listen address)")
	fs.StringVar(&c.data, "data", dataDirDefault(), "data directory whose configuration names the gateway's listen address")
	fs.StringVar(&c.config, "config", "", "configuration file naming the gateway's listen address (default: <data>/portcullis.yaml)")
	fs.StringVar(&c.key, "key", os.Getenv("PORTCULLIS_APPROVER_KEY"), "approver credential")
	return fs, c
}

// do sends a request and decodes a 200 answer into out; other answers become one problem line.
func (c *approverClient) do(ctx context.Context, std Stdio, method, path string, body, out any) int {
	if c.key == "" {
		problem(std.Err, "approvals: no approver credential", "pass --key or set PORTCULLIS_APPROVER_KEY")
		return exitUsage
	}
	if c.url == "" {
		u, err := gatewayURL(c.config, c.data)
		if err != nil {
			return printConfigError(std.Err, err, "pass --url, set PORTCULLIS_URL, or point --config at the gateway's configuration")
		}
		c.url = u
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.url, "/")+path, rd)
	if err != nil {
		problem(std.Err, "approvals: "+err.Error(), "check --url")
		return exitUsage
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		problem(std.Err, "approvals: "+err.Error(), "is the gateway running at "+c.url+"?")
		return exitUsage
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			hint = "use an approver key ('portcullis approvals keys create') or an approver login token (approvals.issuers); agent keys and users' tokens cannot approve"
			if strings.Contains(e.Error.Message, "approvals.approvers") {
				// The credential verified: the advice above was followed, the configuration is
				// what is missing.
				hint = "declare the approver with scopes under approvals.approvers in the gateway's configuration; serve reloads it without a restart"
			}
		case http.StatusForbidden:
			hint = "you cannot approve a request that you invoked yourself"
		case http.StatusNotFound:
			hint = "the ID is wrong, or the request is outside your scopes"
		case http.StatusConflict:
			hint = "the request was already resolved or has expired"
		}
		problem(std.Err, fmt.Sprintf("approvals: %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message), hint)
		return exitFail
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			problem(std.Err, "approvals: unreadable answer: "+err.Error(), "is --url a Portcullis gateway?")
			return exitFail
		}
	}
	return exitOK
}

func approvalsList(ctx context.Context, std Stdio, args []string) int {
	fs, c := approverFlags("list", std)
	state := fs.String("state", "pending", "state to list (empty: all)")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	path := "/v1/approvals"
	if *state != "" {
		path += "?state=" + *state
	}
	var out struct {
		Approvals []approval.Request `json:"approvals"`
	}
	if code := c.do(ctx, std, http.MethodGet, path, nil, &out); code != exitOK {
		return code
	}
	if *asJSON {
		return printJSON(std, out.Approvals)
	}
	tw := tabwriter.NewWriter(std.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tAGENT\tUSER\tTOOL\tRULE\tTHREAT\tEXPIRES")
	for _, r := range out.Approvals {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Agent, orDash(r.User), r.Tool, r.Rule, r.ThreatLevel,
			r.ExpiresAt.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return exitFail
	}
	return exitOK
}

func approvalsShow(ctx context.Context, std Stdio, args []string) int {
	fs, c := approverFlags("show", std)
	wait := fs.Int("wait", 0, "wait up to this many seconds for a pending request to be resolved")
	format := formatFlag(fs)
	if code, done := parseCmdFlags(std, fs, reorder(args)); done {
		return code
	}
	table, ok := tableOutput(std, "approvals show", *format)
	if !ok {
		return exitUsage
	}
	if fs.NArg() != 1 {
		problem(std.Err, "approvals show: want exactly one approval ID", "portcullis approvals list shows the IDs")
		return exitUsage
	}
	path := "/v1/approvals/" + fs.Arg(0)
	if *wait > 0 {
		path += fmt.Sprintf("?wait=%d", *wait)
	}
	var r approval.Request
	if code := c.do(ctx, std, http.MethodGet, path, nil, &r); code != exitOK {
		return code
	}
	if table {
		if err := printApproval(std.Out, r, time.Now()); err != nil {
			return exitFail
		}
		return exitOK
	}
	return printJSON(std, r)
}

func approvalsResolve(ctx context.Context, std Stdio, args []string, verb string) int {
	fs, c := approverFlags(verb, std)
	comment := fs.String("comment", "", "why (recorded in the ledger)")
	if code, done := parseCmdFlags(std, fs, reorder(args)); done {
		return code
	}
	if fs.NArg() != 1 {
		problem(std.Err, "approvals "+verb+": want exactly one approval ID", "portcullis approvals list shows the IDs")
		return exitUsage
	}
	var r approval.Request
	if code := c.do(ctx, std, http.MethodPost, "/v1/approvals/"+fs.Arg(0)+"/"+verb, map[string]string{"comment": *comment}, &r); code != exitOK {
		return code
	}
	fmt.Fprintf(std.Out, "%s: %s\n", r.ID, r.State)
	return exitOK
}

// approvalsWatch prints each pending request once, as it appears, until interrupted.
func approvalsWatch(ctx context.Context, std Stdio, args []string) int {
	fs, c := approverFlags("watch", std)
	interval := fs.Duration("interval", 2*time.Second, "how often to look")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	seen := map[string]bool{}
	for {
		var out struct {
			Approvals []approval.Request `json:"approvals"`
		}
		if code := c.do(ctx, std, http.MethodGet, "/v1/approvals?state=pending", nil, &out); code != exitOK {
			if ctx.Err() != nil {
				return exitOK
			}
			return code
		}
		for _, r := range out.Approvals {
			if !seen[r.ID] {
				seen[r.ID] = true
				fmt.Fprintf(std.Out, "%s  %s  agent=%s user=%s tool=%s rule=%s threat=%s\n", r.CreatedAt.Local().Format(time.TimeOnly),
					r.ID, r.Agent, orDash(r.User), r.Tool, r.Rule, r.ThreatLevel)
			}
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(*interval):
		}
	}
}

// approverKeys implements `approvals keys create|list|revoke`: API keys for people, in the
// approvers' own key store (never the agents'), managed like agents' keys. An approver holds at
// most two active keys, so a leaked one is revoked here, and a running serve refuses it at its
// next use (the key file is re-read when it changes).
func approverKeys(ctx context.Context, std Stdio, args []string) int {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "create":
		return approverKeysCreate(ctx, std, args[1:])
	case "list":
		return listKeys(ctx, std, args[1:], approverKeyKind)
	case "revoke":
		return revokeKeys(ctx, std, args[1:], approverKeyKind)
	}
	if sub == "" || isHelp(sub) {
		w, code := std.Out, exitOK
		if sub == "" {
			w, code = std.Err, exitUsage
		}
		fmt.Fprintln(w, "Usage: portcullis approvals keys COMMAND (create, list, revoke; see 'portcullis approvals help')")
		return code
	}
	return unknownSub(std.Err, "approvals keys", sub, keysSubs)
}

var approverKeyKind = keyKind{cmd: "approvals keys", file: app.ApproverKeysFile, owner: "approver"}

func approverKeysCreate(ctx context.Context, std Stdio, args []string) int {
	fs := flag.NewFlagSet("approvals keys create", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	who := fs.String("approver", "", "approver ID, as declared in approvals.approvers (required)")
	ttl := fs.Duration("ttl", 0, "lifetime of the key (0: no expiry)")
	data := fs.String("data", dataDirDefault(), "data directory")
	cfgFlag := fs.String("config", "", "configuration to check the approver against (default: <data>/portcullis.yaml)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if *who == "" || fs.NArg() > 0 {
		problem(std.Err, "approvals keys create: --approver is required and no positional arguments are taken", "name the person, e.g. --approver alice@example.com")
		return exitUsage
	}
	if *ttl < 0 {
		problem(std.Err, "approvals keys create: --ttl must not be negative", "use 0 for a key without expiry")
		return exitUsage
	}
	ks, ok := approverKeyKind.open(std, *data)
	if !ok {
		return exitUsage
	}
	key, rec, err := identity.CreateAPIKey(ctx, ks, *who, "approver", time.Now(), *ttl)
	if errors.Is(err, identity.ErrKeyLimit) {
		problem(std.Err, fmt.Sprintf("approvals keys create: approver %s already has %d active keys", *who, identity.MaxActiveKeys),
			"revoke the old key with 'portcullis approvals keys revoke KEY_ID' (see 'portcullis approvals keys list --approver "+*who+"')")
		return exitFail
	}
	if err != nil {
		problem(std.Err, "approvals keys create: "+err.Error(), "check the --approver ID and that the data directory is writable")
		return exitFail
	}
	fmt.Fprintf(std.Out, "%s\n", key)
	fmt.Fprintf(std.Err, "approver key %s for %s created; it is shown only once\n", rec.ID, *who)
	warnUndeclared(std, *cfgFlag, *data, "approver", *who)
	return exitOK
}

func printJSON(std Stdio, v any) int {
	enc := json.NewEncoder(std.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFail
	}
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// reorder moves flags before positional arguments, so "approve ID --comment x" works as users type it.
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

// gatewayURL is the gateway's base URL from its configuration's listen address; without a
// configuration (none in the data directory and no --config), the default address.
func gatewayURL(cfgFlag, dataDir string) (string, error) {
	path, explicit := configPath(cfgFlag, dataDir)
	listen := config.Default().Listen
	cfg, err := config.Load(path)
	switch {
	case err == nil:
		listen = cfg.Listen
	case explicit || !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	// A gateway listening on every interface is reached on this machine's loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
