package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portcullis-ai/portcullis/internal/identity"
)

// defaultDataDir is where the embedded default keeps its state unless --data or
// PORTCULLIS_DATA says otherwise.
const defaultDataDir = "./portcullis-data"

func dataDirDefault() string {
	if d := os.Getenv("PORTCULLIS_DATA"); d != "" {
		return d
	}
	return defaultDataDir
}

// runKeys implements `portcullis keys create|list|revoke`: API keys for agents, stored as hashes
// in the data directory. The key itself is printed once, by create, and never again.
func runKeys(ctx context.Context, std Stdio, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		keysUsage(std.Out)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "create":
		return keysCreate(ctx, std, args[1:])
	case "list":
		return keysList(ctx, std, args[1:])
	case "revoke":
		return keysRevoke(ctx, std, args[1:])
	}
	return unknownSub(std.Err, "keys", args[0], keysSubs)
}

var keysSubs = []string{"create", "list", "revoke"}

func keysUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  portcullis keys create --agent ID [--ttl DURATION] [--label TEXT] [--data DIR] [--config FILE]
  portcullis keys list [--agent ID] [--json] [--data DIR]
  portcullis keys revoke [--data DIR] KEY_ID

An agent may hold two active keys at once, so a key can be rotated without downtime:
create the new key, deploy it, then revoke the old one.
The data directory defaults to $PORTCULLIS_DATA or ./portcullis-data. create warns when the
configuration (--config, default <data>/portcullis.yaml) does not declare the agent.
`)
}

func keysFlags(name string, std Stdio) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("keys "+name, flag.ContinueOnError)
	fs.SetOutput(std.Err)
	data := fs.String("data", dataDirDefault(), "data directory")
	return fs, data
}

func keysCreate(ctx context.Context, std Stdio, args []string) int {
	fs, data := keysFlags("create", std)
	agent := fs.String("agent", "", "agent id the key authenticates (required)")
	ttl := fs.Duration("ttl", 0, "lifetime of the key, e.g. 720h (0: no expiry)")
	label := fs.String("label", "", "a note to recognise the key by in 'keys list'")
	cfgFlag := fs.String("config", "", "configuration to check the agent against (default: <data>/portcullis.yaml)")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if *agent == "" || fs.NArg() > 0 {
		problem(std.Err, "keys create: --agent is required and no positional arguments are taken", "portcullis keys create --agent report-generator-v1")
		return exitUsage
	}
	if *ttl < 0 {
		problem(std.Err, "keys create: --ttl must not be negative", "use 0 for a key without expiry")
		return exitUsage
	}
	ks, ok := agentKeys.open(std, *data)
	if !ok {
		return exitUsage
	}
	key, rec, err := identity.CreateAPIKey(ctx, ks, *agent, *label, time.Now(), *ttl)
	if errors.Is(err, identity.ErrKeyLimit) {
		problem(std.Err, fmt.Sprintf("keys create: agent %s already has %d active keys", *agent, identity.MaxActiveKeys),
			"revoke the old key with 'portcullis keys revoke KEY_ID' (see 'portcullis keys list --agent "+*agent+"')")
		return exitFail
	}
	if err != nil {
		problem(std.Err, fmt.Sprintf("keys create: %v", err), "check the --agent id and that the data directory is writable")
		return exitUsage
	}
	fmt.Fprintf(std.Err, "created key %s for agent %s; it is shown once, store it now:\n", rec.ID, rec.AgentID)
	fmt.Fprintln(std.Out, key)
	warnUndeclared(std, *cfgFlag, *data, "agent", *agent)
	return exitOK
}

func keysList(ctx context.Context, std Stdio, args []string) int {
	return listKeys(ctx, std, args, agentKeys)
}

func keysRevoke(ctx context.Context, std Stdio, args []string) int {
	return revokeKeys(ctx, std, args, agentKeys)
}

// keyKind is one of the two key stores the CLI manages: agents' keys and approvers' keys. They
// are separate files so that no agent key can ever authenticate on the approvals API; the
// commands over them are the same.
type keyKind struct {
	cmd   string // the command, in messages: "keys" or "approvals keys"
	file  string // the file name under the data directory
	owner string // the flag and column naming the key's owner: "agent" or "approver"
}

var agentKeys = keyKind{cmd: "keys", file: identity.KeyFileName, owner: "agent"}

func (k keyKind) open(std Stdio, dir string) (*identity.FileKeyStore, bool) {
	path := filepath.Join(dir, k.file)
	ks, err := identity.OpenFileKeyStore(path)
	if err != nil {
		problem(std.Err, fmt.Sprintf("%s: %v", path, err), "fix or move the key file; it is JSON written by 'portcullis "+k.cmd+"'")
		return nil, false
	}
	return ks, true
}

func listKeys(ctx context.Context, std Stdio, args []string, k keyKind) int {
	fs := flag.NewFlagSet(k.cmd+" list", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	data := fs.String("data", dataDirDefault(), "data directory")
	owner := fs.String(k.owner, "", "only this "+k.owner+"'s keys")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := parseCmdFlags(std, fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		problem(std.Err, k.cmd+" list: no positional arguments are taken", "filter with --"+k.owner+" ID")
		return exitUsage
	}
	ks, ok := k.open(std, *data)
	if !ok {
		return exitUsage
	}
	recs, err := ks.List(ctx, *owner)
	if err != nil {
		problem(std.Err, fmt.Sprintf("%s list: %v", k.cmd, err), "")
		return exitUsage
	}
	now := time.Now()
	if *asJSON {
		type row struct {
			identity.KeyRecord
			Status string `json:"status"`
		}
		rows := make([]row, 0, len(recs))
		for _, r := range recs {
			r.Hash = "" // the hash is not secret, but nobody needs it printed
			rows = append(rows, row{r, r.Status(now)})
		}
		enc := json.NewEncoder(std.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return exitUsage
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(std.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\tSTATUS\tCREATED\tEXPIRES\tLABEL\n", strings.ToUpper(k.owner))
	for _, r := range recs {
		exp := "never"
		if !r.ExpiresAt.IsZero() {
			exp = r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.AgentID, r.Status(now), r.CreatedAt.UTC().Format(time.RFC3339), exp, r.Label)
	}
	tw.Flush()
	return exitOK
}

func revokeKeys(ctx context.Context, std Stdio, args []string, k keyKind) int {
	fs := flag.NewFlagSet(k.cmd+" revoke", flag.ContinueOnError)
	fs.SetOutput(std.Err)
	data := fs.String("data", dataDirDefault(), "data directory")
	if code, done := parseCmdFlags(std, fs, reorder(args)); done {
		return code
	}
	if fs.NArg() != 1 {
		problem(std.Err, k.cmd+" revoke: exactly one KEY_ID is required", "the id is the second part of pcl_<id>_...; see 'portcullis "+k.cmd+" list'")
		return exitUsage
	}
	id := fs.Arg(0)
	if full, err := identity.APIKeyID(id); err == nil {
		id = full // a whole key was pasted: revoke it by its id
	}
	ks, ok := k.open(std, *data)
	if !ok {
		return exitUsage
	}
	err := ks.Revoke(ctx, id, time.Now())
	if errors.Is(err, identity.ErrKeyNotFound) {
		problem(std.Err, fmt.Sprintf("%s revoke: no key with id %q", k.cmd, id), "see 'portcullis "+k.cmd+" list'")
		return exitFail
	}
	if err != nil {
		problem(std.Err, fmt.Sprintf("%s revoke: %v", k.cmd, err), "check that the data directory is writable")
		return exitUsage
	}
	fmt.Fprintf(std.Out, "revoked %s\n", id)
	return exitOK
}
