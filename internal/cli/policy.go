package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/policy"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// policySub is one `portcullis policy` sub-command.
type policySub struct {
	summary string
	run     func(ctx context.Context, std Stdio, args []string) int
}

// policySubs is the sub-command table. Each file registers its sub-commands with
// registerPolicySub from an init function (policy_lint.go adds "lint" the same way).
var policySubs = map[string]policySub{}

func init() {
	registerPolicySub("check", "validate policy files: exit 0, or 1 with file:line:col: message lines", runPolicyCheck)
	registerPolicySub("eval", "evaluate JSONL requests: --policy PATH... --input FILE|-", runPolicyEval)
	registerPolicySub("test", "run policy unit tests (*_test.yaml files of request → expected decision)", runPolicyTest)
}

func registerPolicySub(name, summary string, run func(ctx context.Context, std Stdio, args []string) int) {
	policySubs[name] = policySub{summary, run}
}

func runPolicy(ctx context.Context, std Stdio, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		policyUsage(std.Out)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	sub, ok := policySubs[args[0]]
	if !ok {
		return unknownSub(std.Err, "policy", args[0], subcommands()["policy"])
	}
	return sub.run(ctx, std, args[1:])
}

func policyUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: portcullis policy COMMAND [ARGS]\n\nCommands:")
	names := make([]string, 0, len(policySubs))
	for n := range policySubs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, policySubs[n].summary)
	}
}

// printLoadError prints a policy load error as one problem per line; it returns the exit code.
func printLoadError(w io.Writer, err error) int {
	var list policy.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			msg := e.Pos.String() + ": "
			if e.Key != "" {
				msg += e.Key + ": "
			}
			problem(w, msg+e.Msg, e.Hint)
		}
		return exitFail
	}
	problem(w, err.Error(), "pass policy files or directories that exist and are readable")
	return exitUsage
}

func runPolicyCheck(_ context.Context, std Stdio, args []string) int {
	fl := flag.NewFlagSet("policy check", flag.ContinueOnError)
	fl.SetOutput(std.Err)
	allowEmpty := fl.Bool("allow-empty", false, "accept paths that hold no policy (a set that denies every call)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "Usage: portcullis policy check [--allow-empty] PATH...\n\nFlags:")
		fl.PrintDefaults()
	}
	if code, done := parseCmdFlags(std, fl, args); done {
		return code
	}
	if fl.NArg() == 0 {
		problem(std.Err, "policy check: no path given", "portcullis policy check policies/")
		return exitUsage
	}
	set, err := policy.Load(fl.Args()...)
	if err != nil {
		return printLoadError(std.Err, err)
	}
	if len(set.Agents()) == 0 && !*allowEmpty {
		problem(std.Err, fmt.Sprintf("policy check: no policy in %s: a gateway with this set denies every call", strings.Join(fl.Args(), ", ")),
			"policy files are *.yaml or *.yml (not *_test.yaml); pass --allow-empty if denying everything is intended")
		return exitFail
	}
	fmt.Fprintf(std.Out, "ok: %d files, %d policies, %d rules\n", len(set.Files()), len(set.Agents()), set.RuleCount())
	return exitOK
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// threatForRequest decides the threat level and findings of a request that did not state its
// threat_level: the inspection engine runs over its params, as the gateway would.
var threatForRequest = func(req *policy.Request) (threat.Level, []string, error) {
	raw, err := json.Marshal(req.Params)
	if err != nil {
		return threat.None, nil, err
	}
	res, err := evalInspector.Inspect(context.Background(), req.Tool, inspect.Request, raw)
	if err != nil {
		return threat.None, nil, err
	}
	kinds := make([]string, 0, len(res.Findings))
	for _, f := range res.Findings {
		kinds = append(kinds, f.Kind)
	}
	return res.Level, kinds, nil
}

// evalInspector is the inspection engine with its defaults, shared by every eval line.
var evalInspector = inspect.New(inspect.Config{})

// maxEvalLine bounds one JSONL input line.
const maxEvalLine = 1 << 20

// evalOutput is one decision line of `policy eval`.
type evalOutput struct {
	Decision        string             `json:"decision"`
	Rule            string             `json:"rule"`
	Enforcement     string             `json:"enforcement"`
	RuleEnforcement string             `json:"rule_enforcement,omitempty"`
	Reason          string             `json:"reason"`
	Explain         []policy.RuleTrace `json:"explain"`
	// WouldHave is the decision dry-run rules would have made, when it differs.
	WouldHave *wouldHave `json:"would_have,omitempty"`
}

type wouldHave struct {
	Decision string `json:"decision"`
	Rule     string `json:"rule"`
}

func runPolicyEval(_ context.Context, std Stdio, args []string) int {
	fl := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fl.SetOutput(std.Err)
	var pols multiFlag
	fl.Var(&pols, "policy", "policy file or directory (repeatable)")
	input := fl.String("input", "-", "JSONL requests: a file, or - for standard input")
	format := formatFlag(fl)
	sessionLabels := fl.String("session", "", "session state for requests without their own: the labels seen, comma-separated (e.g. untrusted,private)")
	fl.Usage = func() {
		fmt.Fprintln(fl.Output(), "Usage: portcullis policy eval --policy PATH [--policy PATH...] [--session LABELS] --input FILE|- [--format table|json]")
		fl.PrintDefaults()
	}
	if code, done := parseCmdFlags(std, fl, args); done {
		return code
	}
	if len(pols) == 0 {
		problem(std.Err, "policy eval: --policy is required", "portcullis policy eval --policy policies/ --input requests.jsonl")
		return exitUsage
	}
	table, ok := tableOutput(std, "policy eval", *format)
	if !ok {
		return exitUsage
	}
	set, err := policy.Load(pols...)
	if err != nil {
		return printLoadError(std.Err, err)
	}
	var sess *policy.Session
	if *sessionLabels != "" {
		sess = &policy.Session{Labels: strings.Split(*sessionLabels, ",")}
	}
	in := std.In
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			problem(std.Err, fmt.Sprintf("policy eval: %v", err), "--input names a JSONL file, or - for standard input")
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	out := bufio.NewWriter(std.Out)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		fmt.Fprintln(tw, "LINE\tDECISION\tRULE\tENFORCEMENT\tREASON")
	}
	emit := func(n int, o *evalOutput, problem string) {
		switch {
		case tw == nil && problem != "":
			_ = enc.Encode(map[string]string{"error": problem})
		case tw == nil:
			_ = enc.Encode(o)
		case problem != "":
			fmt.Fprintf(tw, "%d\tERROR\t-\t-\t%s\n", n, oneLine(problem))
		default:
			reason := o.Reason
			if o.WouldHave != nil {
				reason += fmt.Sprintf(" (dry run: would have been %s by %s)", o.WouldHave.Decision, o.WouldHave.Rule)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", n, o.Decision, orDash(o.Rule), orDash(o.Enforcement), orDash(oneLine(reason)))
		}
	}
	r := bufio.NewReaderSize(in, 64<<10)
	bad := false
	for n := 1; ; n++ {
		line, tooLong, err := readLine(r, maxEvalLine)
		if err != nil && len(line) == 0 && !tooLong {
			if !errors.Is(err, io.EOF) {
				problem(std.Err, fmt.Sprintf("policy eval: read input: %v", err), "")
				return exitUsage
			}
			break
		}
		if tooLong {
			bad = true
			emit(n, nil, fmt.Sprintf("line %d: longer than %d bytes", n, maxEvalLine))
			continue
		}
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		o, err := evalLine(set, line, sess)
		if err != nil {
			bad = true
			emit(n, nil, fmt.Sprintf("line %d: %v", n, err))
			continue
		}
		emit(n, o, "")
	}
	if bad {
		return exitFail
	}
	return exitOK
}

// readLine reads one line without its newline; lines longer than max are consumed and reported.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, isPrefix, e := r.ReadLine()
		if len(line)+len(chunk) > max {
			tooLong = true
		} else {
			line = append(line, chunk...)
		}
		if e != nil {
			return line, tooLong, e
		}
		if !isPrefix {
			return line, tooLong, nil
		}
	}
}

func decodeAndInspect(data []byte) (*policy.Request, error) {
	req, hasThreat, err := policy.DecodeRequest(data)
	if err != nil {
		return nil, err
	}
	if !hasThreat {
		lvl, findings, err := threatForRequest(req)
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		req.Threat = lvl
		req.Findings = append(req.Findings, findings...)
	}
	return req, nil
}

func evalLine(set *policy.Set, line []byte, sess *policy.Session) (*evalOutput, error) {
	req, err := decodeAndInspect(line)
	if err != nil {
		return nil, err
	}
	if req.Session == nil {
		req.Session = sess
	}
	ex := set.Explain(req)
	out := &evalOutput{
		Decision: ex.Action.String(), Rule: ex.Rule, Enforcement: ex.Enforcement,
		RuleEnforcement: ex.RuleEnforcement, Reason: ex.Reason, Explain: ex.Rules,
	}
	if w := ex.WouldHave; w != nil {
		out.WouldHave = &wouldHave{Decision: w.Action.String(), Rule: w.Rule}
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------------
// policy test

// A test file (name ending in _test.yaml or _test.yml) sits next to the policies it tests:
//
//	policies: [../other/dir]   # optional; default: the policy files in the test file's directory
//	cases:
//	  - name: monthly report in office hours
//	    request: {agent: {id: report-generator-v1}, tool: fetch_sales_data, params: {...}, time: "..."}
//	    want: ALLOW
//	    rule: read_sales_data  # optional
type testCase struct {
	name    string
	pos     policy.Pos
	request map[string]any
	want    policy.Action
	rule    *string
}

func runPolicyTest(_ context.Context, std Stdio, args []string) int {
	fl := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fl.SetOutput(std.Err)
	verbose := fl.Bool("v", false, "print passing cases too")
	fl.Usage = func() { fmt.Fprintln(fl.Output(), "Usage: portcullis policy test [-v] PATH...") }
	if code, done := parseCmdFlags(std, fl, args); done {
		return code
	}
	if fl.NArg() == 0 {
		problem(std.Err, "policy test: no path given", "portcullis policy test policies/")
		return exitUsage
	}
	var files []string
	for _, p := range fl.Args() {
		st, err := os.Stat(p)
		if err != nil {
			problem(std.Err, fmt.Sprintf("policy test: %v", err), "pass test files or directories holding *_test.yaml files")
			return exitUsage
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && policy.IsTestFile(d.Name()) {
				files = append(files, path)
			}
			return nil
		})
	}
	if len(files) == 0 {
		problem(std.Err, "policy test: no *_test.yaml files found", "name test files like policy_test.yaml, next to the policies")
		return exitFail
	}
	passed, failed, broken := 0, 0, false
	for _, tf := range files {
		p, f, ok := runTestFile(std, tf, *verbose)
		passed += p
		failed += f
		broken = broken || !ok
	}
	fmt.Fprintf(std.Out, "%d passed, %d failed\n", passed, failed)
	if failed > 0 || broken {
		return exitFail
	}
	return exitOK
}

func runTestFile(std Stdio, name string, verbose bool) (passed, failed int, ok bool) {
	policies, cases, err := parseTestFile(name)
	if err != nil {
		printLoadError(std.Err, err)
		return 0, 0, false
	}
	set, err := policy.Load(policies...)
	if err != nil {
		printLoadError(std.Err, err)
		return 0, 0, false
	}
	for _, c := range cases {
		data, err := json.Marshal(c.request)
		if err != nil {
			problem(std.Err, fmt.Sprintf("%s: %s: request: %v", c.pos, c.name, err), "")
			failed++
			continue
		}
		req, err := decodeAndInspect(data)
		if err != nil {
			problem(std.Err, fmt.Sprintf("%s: %s: %v", c.pos, c.name, err), "fix the request in the test case")
			failed++
			continue
		}
		d := set.Evaluate(req)
		good := d.Action == c.want && (c.rule == nil || *c.rule == d.Rule)
		if good {
			passed++
			if verbose {
				fmt.Fprintf(std.Out, "PASS %s: %s\n", c.pos, c.name)
			}
			continue
		}
		failed++
		want := c.want.String()
		if c.rule != nil {
			want += fmt.Sprintf(" (rule %q)", *c.rule)
		}
		fmt.Fprintf(std.Out, "FAIL %s: %s: got %s (rule %q), want %s\n", c.pos, c.name, d.Action, d.Rule, want)
	}
	return passed, failed, true
}

func parseTestFile(name string) ([]string, []testCase, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("read test file: %w", err)
	}
	bad := func(n *yaml.Node, key, msg, hint string) error {
		return policy.ErrorList{{Pos: policy.Pos{File: name, Line: n.Line, Col: n.Column}, Key: key, Msg: msg, Hint: hint}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, policy.ErrorList{{Pos: policy.Pos{File: name, Line: 1, Col: 1}, Msg: "YAML syntax error: " + strings.TrimPrefix(err.Error(), "yaml: "), Hint: "check indentation"}}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, bad(&doc, "", "a test file is a mapping with cases: (and optionally policies:)", "")
	}
	root := doc.Content[0]
	dir := filepath.Dir(name)
	policies := []string{dir}
	var cases []testCase
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			return nil, nil, bad(k, k.Value, "duplicate key", "")
		}
		seen[k.Value] = true
		switch k.Value {
		case "policies":
			var ps []string
			if err := v.Decode(&ps); err != nil || len(ps) == 0 {
				return nil, nil, bad(v, "policies", "want a list of policy files or directories", "paths are relative to the test file")
			}
			policies = policies[:0]
			for _, p := range ps {
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				policies = append(policies, p)
			}
		case "cases":
			if v.Kind != yaml.SequenceNode {
				return nil, nil, bad(v, "cases", "want a list of cases", "")
			}
			for j, cn := range v.Content {
				c, err := parseCase(name, cn, fmt.Sprintf("cases[%d]", j), bad)
				if err != nil {
					return nil, nil, err
				}
				cases = append(cases, c)
			}
		default:
			return nil, nil, bad(k, k.Value, fmt.Sprintf("unknown key %q", k.Value), "allowed: policies, cases")
		}
	}
	if len(cases) == 0 {
		return nil, nil, bad(root, "cases", "no test cases", "add cases: with name, request, want")
	}
	return policies, cases, nil
}

func parseCase(file string, n *yaml.Node, path string, bad func(*yaml.Node, string, string, string) error) (testCase, error) {
	c := testCase{pos: policy.Pos{File: file, Line: n.Line, Col: n.Column}}
	if n.Kind != yaml.MappingNode {
		return c, bad(n, path, "a case is a mapping with name, request, want", "")
	}
	var hasWant, hasReq bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			c.name = v.Value
		case "request":
			if err := v.Decode(&c.request); err != nil {
				return c, bad(v, path+".request", fmt.Sprintf("invalid request: %v", err), "the request has the JSON form policy eval reads")
			}
			hasReq = true
		case "want":
			a, err := policy.ParseAction(v.Value)
			if err != nil {
				return c, bad(v, path+".want", err.Error(), "")
			}
			c.want, hasWant = a, true
		case "rule":
			s := v.Value
			c.rule = &s
		default:
			return c, bad(k, path+"."+k.Value, fmt.Sprintf("unknown key %q", k.Value), "allowed: name, request, want, rule")
		}
	}
	if !hasWant || !hasReq {
		return c, bad(n, path, "a case needs request and want", "")
	}
	if c.name == "" {
		c.name = path
	}
	return c, nil
}
