package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// formatFlag adds --format to a command whose output people and programs both read.
func formatFlag(fs *flag.FlagSet) *string {
	return fs.String("format", "", "output: table or json (default: table on a terminal, json when piped)")
}

// tableOutput resolves --format: a table when a person reads stdout, JSON when a program does.
func tableOutput(std Stdio, cmd, v string) (table, ok bool) {
	switch v {
	case "":
		return isTerminal(std.Out), true
	case "table":
		return true, true
	case "json":
		return false, true
	}
	problem(std.Err, fmt.Sprintf("%s: unknown --format %q", cmd, v), "want table or json")
	return false, false
}

// recordTable prints ledger records one row each, durations as durations.
type recordTable struct {
	w      io.Writer
	tw     *tabwriter.Writer
	header bool
}

func newRecordTable(w io.Writer) *recordTable {
	return &recordTable{w: w, tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

func (t *recordTable) row(e ledger.Entry) error {
	if !t.header {
		fmt.Fprintln(t.tw, "SEQ\tTIME\tKIND\tAGENT\tUSER\tTOOL\tDECISION\tTHREAT\tDETAIL")
		t.header = true
	}
	r, err := ledger.ParseRecord(e.Data)
	if err != nil {
		return fmt.Errorf("record %d: %w", e.Seq, err)
	}
	agent, user := "-", "-"
	if r.Agent != nil {
		agent = r.Agent.ID
	}
	if r.User != nil {
		user = r.User.ID
	}
	detail := r.Reason
	if a := r.Approval; a != nil {
		var parts []string
		for _, p := range []string{a.ID, a.Result} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		if a.Approver != "" {
			parts = append(parts, "by "+a.Approver)
		}
		if a.WaitMS > 0 {
			parts = append(parts, "after "+(time.Duration(a.WaitMS)*time.Millisecond).String())
		}
		detail = strings.TrimSpace(detail + " " + strings.Join(parts, " "))
	}
	if detail == "" {
		detail = r.Message
	}
	threat := "-"
	if r.ThreatLevel != 0 {
		threat = r.ThreatLevel.String()
	}
	_, err = fmt.Fprintf(t.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, r.Time.Local().Format(time.DateTime), r.Event(),
		agent, user, orDash(r.Tool), orDash(r.Decision), threat, orDash(oneLine(detail)))
	return err
}

func (t *recordTable) flush() error { return t.tw.Flush() }

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// printApproval prints one approval request for a person: one field per line, times with how
// long from now, durations as durations.
func printApproval(w io.Writer, r approval.Request, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		d := t.Sub(now).Round(time.Second)
		rel := "in " + d.String()
		if d < 0 {
			rel = (-d).String() + " ago"
		}
		return t.Local().Format(time.DateTime) + " (" + rel + ")"
	}
	line("ID", r.ID)
	line("State", string(r.State))
	line("Agent", r.Agent)
	user := orDash(r.User)
	if r.User != "" && !r.UserVerified {
		user += " (asserted by the agent, not verified)"
	}
	line("User", user)
	line("Tool", r.Tool)
	line("Params", string(r.Params))
	if r.Labels["kind"] == "tool_definition" {
		// A held tool definition: what is approved is this exact definition.
		line("Definition", r.Labels["definition"])
	}
	line("Rule", r.Rule)
	line("Threat", r.ThreatLevel.String())
	for _, f := range r.Findings {
		b, _ := json.Marshal(f)
		line("Finding", string(b))
	}
	line("Approvals needed", fmt.Sprint(r.Required))
	line("Grant lifetime", r.GrantTTL.String())
	line("Created", when(r.CreatedAt))
	line("Expires", when(r.ExpiresAt))
	for _, v := range r.Votes {
		b, _ := json.Marshal(v)
		line("Vote", string(b))
	}
	line("Resolved", when(r.ResolvedAt))
	line("Resolved by", r.ResolvedBy)
	line("Comment", r.Comment)
	line("Grant expires", when(r.GrantExpiresAt))
	line("Consumed", when(r.ConsumedAt))
	line("Decision ID", r.DecisionID)
	line("Policy version", r.PolicyVersion)
	return tw.Flush()
}
