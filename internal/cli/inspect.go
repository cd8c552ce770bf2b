package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// inspectLine is one input line of `portcullis inspect`.
type inspectLine struct {
	Tool   string          `json:"tool"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	// Definition is a tool's definition as an MCP server lists it (name, description,
	// inputSchema, annotations), read in the definition direction.
	Definition json.RawMessage `json:"definition"`
}

// inspectOut is one output line. Error lines carry the input line number and the error, and are
// still fail-closed: their level is high, so a consumer that reads only the level denies.
type inspectOut struct {
	Line     int               `json:"line,omitempty"`
	Error    string            `json:"error,omitempty"`
	Level    threat.Level      `json:"level"`
	Findings []inspect.Finding `json:"findings"`
}

// runInspect implements `portcullis inspect [--direction request|response] [FILE|-]`: JSON lines
// in, one {"level","findings"} line out per input line, in order.
func runInspect(ctx context.Context, std Stdio, args []string) int {
	fset := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fset.SetOutput(std.Err)
	dirFlag := fset.String("direction", "", "request (tool arguments), response (tool results) or definition (tool definitions); default: per line, by the member it has")
	roots := fset.String("roots", "", "comma-separated directories path arguments may name")
	failAt := fset.String("fail-at", "", "exit 1 when any line's level is at least this (none|low|medium|high|critical)")
	maxBytes := fset.Int("max-bytes", 4<<20, "largest input line in bytes")
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "Usage: portcullis inspect [--direction request|response|definition] [--roots DIR,...] [--fail-at LEVEL] [FILE|-]")
		fmt.Fprintln(fset.Output(), "\nReads one JSON object per line, {\"tool\":…,\"params\":{…}}, {\"tool\":…,\"result\":…} or {\"tool\":…,\"definition\":{…}},")
		fmt.Fprintln(fset.Output(), "and prints one {\"level\":…,\"findings\":[…]} line per input line, in order.")
		fset.PrintDefaults()
	}
	if code, done := parseCmdFlags(std, fset, args); done {
		return code
	}
	var dir *inspect.Direction
	switch *dirFlag {
	case "":
	case "request":
		d := inspect.Request
		dir = &d
	case "response":
		d := inspect.Response
		dir = &d
	case "definition":
		d := inspect.Definition
		dir = &d
	default:
		problem(std.Err, fmt.Sprintf("inspect: unknown direction %q", *dirFlag), "use --direction request, response or definition")
		return exitUsage
	}
	fail := threat.Level(255)
	if *failAt != "" {
		l, err := threat.ParseLevel(*failAt)
		if err != nil {
			problem(std.Err, "inspect: "+err.Error(), "")
			return exitUsage
		}
		fail = l
	}
	if fset.NArg() > 1 {
		problem(std.Err, "inspect: more than one input file", "pass one FILE, or - for standard input")
		return exitUsage
	}
	in, name := std.In, "-"
	if fset.NArg() == 1 && fset.Arg(0) != "-" {
		name = fset.Arg(0)
		f, err := os.Open(name)
		if err != nil {
			problem(std.Err, fmt.Sprintf("inspect: %v", err), "check the file name")
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	cfg := inspect.Config{MaxBytes: *maxBytes}
	if *roots != "" {
		cfg.PathRoots = strings.Split(*roots, ",")
	}
	eng := inspect.New(cfg)
	out := bufio.NewWriter(std.Out)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	r := bufio.NewReaderSize(in, 64<<10)
	code := exitOK
	for n := 1; ; n++ {
		line, tooLong, err := readInspectLine(r, *maxBytes)
		if err != nil && !errors.Is(err, io.EOF) {
			problem(std.Err, fmt.Sprintf("%s:%d: read: %v", name, n, err), "")
			return exitUsage
		}
		if len(line) == 0 && !tooLong && errors.Is(err, io.EOF) {
			break
		}
		if len(strings.TrimSpace(string(line))) == 0 && !tooLong {
			if errors.Is(err, io.EOF) {
				break
			}
			continue // blank lines are not inputs (line numbers still count them)
		}
		o := inspectOne(ctx, eng, line, tooLong, *maxBytes, dir)
		if o.Error != "" {
			o.Line = n
			problem(std.Err, fmt.Sprintf("%s:%d:1: %s", name, n, o.Error), "each line must be one JSON object with \"tool\" and \"params\" or \"result\"")
			code = exitFail
		}
		if o.Level >= fail {
			code = exitFail
		}
		if werr := enc.Encode(o); werr != nil {
			problem(std.Err, fmt.Sprintf("inspect: write: %v", werr), "")
			return exitUsage
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if ctx.Err() != nil {
			problem(std.Err, "inspect: "+ctx.Err().Error(), "")
			return exitUsage
		}
	}
	return code
}

// inspectOne inspects one input line and never fails: problems become error lines.
func inspectOne(ctx context.Context, eng *inspect.Engine, line []byte, tooLong bool, maxBytes int, dir *inspect.Direction) inspectOut {
	malformed := func(msg string) inspectOut {
		return inspectOut{Error: msg, Level: threat.High, Findings: []inspect.Finding{{
			Kind: inspect.KindMalformed, Severity: threat.High, Path: "$", Evidence: msg, Score: 1, Detector: "engine"}}}
	}
	if tooLong {
		o := malformed(fmt.Sprintf("line longer than %d bytes; not inspected", maxBytes))
		o.Findings[0].Kind = inspect.KindCapped
		return o
	}
	var in inspectLine
	if err := json.Unmarshal(line, &in); err != nil {
		return malformed("invalid JSON line: " + err.Error())
	}
	raw, d := in.Params, inspect.Request
	switch {
	case len(in.Params) > 0:
	case len(in.Result) > 0:
		raw, d = in.Result, inspect.Response
	case len(in.Definition) > 0:
		raw, d = in.Definition, inspect.Definition
	}
	if dir != nil {
		d = *dir
	}
	if len(raw) == 0 {
		return malformed(`line has none of "params", "result" and "definition"`)
	}
	res, err := eng.Inspect(ctx, in.Tool, d, raw)
	o := inspectOut{Level: res.Level, Findings: res.Findings}
	if err != nil {
		o.Error = err.Error()
		o.Level = max(o.Level, threat.High)
	}
	return o
}

// readInspectLine reads one line of at most max bytes. A longer line is consumed to its end and reported
// as tooLong, so one oversized input does not end the stream.
func readInspectLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, isPrefix, e := r.ReadLine()
		if !tooLong {
			if len(line)+len(chunk) > max {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if e != nil {
			return line, tooLong, e
		}
		if !isPrefix {
			return line, tooLong, nil
		}
	}
}
