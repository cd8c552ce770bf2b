package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Finding kinds reported by the engine itself (detectors define their own).
const (
	// KindCapped: a work cap (size, depth, values, decoded bytes, work) stopped or shortened the
	// scan. Work caps depend only on the input, so a capped input is capped on any machine.
	KindCapped = "inspection_capped"
	// KindTimeout: the wall-clock guard (Config.TimeBudget) stopped the scan. Unlike the work
	// caps it depends on the machine and its load; it is a last resort, reported apart so that an
	// operator can tell a starved gateway from an oversized input.
	KindTimeout = "inspection_timeout"
	// KindMalformed: the data was not valid JSON or not valid UTF-8.
	KindMalformed = "malformed_input"
	// KindInternalError: a detector failed (panicked); the call was not fully inspected.
	KindInternalError = "inspection_error"
)

// ErrInternal is returned (wrapped) when a detector panics; the result carries an
// inspection_error finding at high.
var ErrInternal = errors.New("inspection failed")

// ErrCanceled is returned (wrapped with the context's error) when the caller's context ends
// before inspection finishes. The partial result carries an inspection_capped finding.
var ErrCanceled = errors.New("inspection canceled")

// Config configures an Engine. The zero value of every field means "use the default".
// It is shared by the engine and every detector (through Call.Config), so detector settings live
// here too. Detectors must treat it as read-only.
type Config struct {
	// MaxBytes caps the size of the inspected JSON (default 4 MiB). Larger input is not parsed.
	MaxBytes int
	// MaxDepth caps JSON nesting (default 64).
	MaxDepth int
	// MaxValues caps the strings (leaves and keys) inspected per call (default 20,000).
	MaxValues int
	// MaxDecodedBytes caps the decoded readings kept per call, summed over values (default 1 MiB);
	// Limits caps them per value.
	MaxDecodedBytes int
	// Limits bounds decoding per value (default DefaultLimits).
	Limits Limits
	// MaxWork caps the bytes the detectors are given per call: every string's bytes (keys and
	// values) plus its decoded readings (default MaxBytes + MaxDecodedBytes). Like the other
	// caps it is counted in the input, not in time, so it gives the same verdict on any machine.
	MaxWork int
	// TimeBudget is the wall-clock guard of one Inspect call (default DefaultTimeBudget), a last
	// resort against a detector that runs away: the work caps bound the normal cost, and a
	// scan stopped by the clock is reported as inspection_timeout.
	TimeBudget time.Duration
	// CapSeverity is the severity of an inspection_capped finding (default high): a capped scan is
	// never a silent pass.
	CapSeverity threat.Level
	// MaxFindings caps the findings kept per call (default 256); later ones are counted in a
	// final inspection_capped finding.
	MaxFindings int

	// DetectorConfig configures the data-attack detectors (path roots, shell-like tools, resolver).
	DetectorConfig

	// LargePayload is the size in bytes above which a request's arguments count as an unusually
	// large payload for the exfiltration detector (default 256 KiB; a negative value disables it).
	LargePayload int
	// AllowedHosts are hosts (exact, or ".example.com" for a domain and its subdomains) that
	// links and images may point to without being treated as outside URLs by the exfiltration
	// detector.
	AllowedHosts []string

	// Model configures the learned prompt-injection classifier (on by default).
	Model ModelConfig

	// Detectors replaces the built-in detector list when not nil.
	Detectors []Detector
	// Disabled names detector families (Detector.Name) to skip.
	Disabled []string
}

// DefaultTimeBudget is Config.TimeBudget's default: far above what the work caps allow on a
// loaded machine (the largest default input takes well under a second idle), so that load never
// changes a verdict, and short enough to end a runaway scan.
const DefaultTimeBudget = 30 * time.Second

func (c *Config) withDefaults() {
	// Zero or negative caps mean the default: a cap can be raised, never switched off.
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.MaxBytes, 4<<20)
	def(&c.MaxDepth, 64)
	def(&c.MaxValues, 20000)
	def(&c.MaxDecodedBytes, 1<<20)
	def(&c.MaxFindings, 256)
	if c.LargePayload == 0 {
		c.LargePayload = 256 << 10 // negative disables the large-payload check
	}
	def(&c.Limits.MaxLayers, DefaultLimits.MaxLayers)
	def(&c.Limits.MaxDecodedBytes, DefaultLimits.MaxDecodedBytes)
	def(&c.Limits.MaxDecodeDepth, DefaultLimits.MaxDecodeDepth)
	def(&c.Limits.MinBlob, DefaultLimits.MinBlob)
	def(&c.MaxWork, c.MaxBytes+c.MaxDecodedBytes)
	if c.TimeBudget <= 0 {
		c.TimeBudget = DefaultTimeBudget
	}
	if c.CapSeverity == threat.None {
		c.CapSeverity = threat.High
	}
}

// CallDetector is implemented by detectors that also judge the call as a whole (its size, say)
// once per call, besides each value.
type CallDetector interface {
	InspectCall(c *Call, report func(Finding))
}

// arrayJoiner is implemented by detectors that also read the string elements of an array joined
// into one value (their parts concatenated, and joined by spaces), the way a tool that builds one
// string from a list of parts receives them: an injection split across elements is whole there.
// joinsArrays says whether elems, whose bytes fall in the classes chars, are worth joining for
// this call; the joined value is then inspected by Inspect at the array's path, and only
// findings stronger than the elements' own are kept.
type arrayJoiner interface {
	joinsArrays(c *Call, elems []string, chars charSet) bool
}

// Result is the outcome of inspecting one call.
type Result struct {
	Level    threat.Level `json:"level"`
	Findings []Finding    `json:"findings"`
	// Capped is true when any cap shortened the scan (an inspection_capped or inspection_timeout
	// finding is present).
	Capped bool `json:"capped,omitempty"`
}

// Engine runs the detectors over tool calls. It is safe for concurrent use.
type Engine struct {
	cfg       Config
	detectors []Detector
	names     []string // detectors[i].Name(), asked once rather than per value
	callDets  []CallDetector
	joiners   []int     // indexes in detectors of the arrayJoiners
	pool      sync.Pool // *scratch
}

type scratch struct {
	val      Value
	path     []byte
	findings []Finding
	elems    []string // the walker's array elements
	keys     []string // walkValue's member order
}

// New builds an engine from cfg (defaults filled in).
func New(cfg Config) *Engine {
	cfg.withDefaults()
	dets := cfg.Detectors
	if dets == nil {
		dets = allDetectors(&cfg)
	}
	e := &Engine{cfg: cfg}
	for _, d := range dets {
		if disabled(cfg.Disabled, d.Name()) {
			continue
		}
		e.detectors = append(e.detectors, d)
		e.names = append(e.names, d.Name())
		if cd, ok := d.(CallDetector); ok {
			e.callDets = append(e.callDets, cd)
		}
		if _, ok := d.(arrayJoiner); ok {
			e.joiners = append(e.joiners, len(e.detectors)-1)
		}
	}
	e.pool.New = func() any { return &scratch{path: make([]byte, 0, 64)} }
	return e
}

func disabled(list []string, name string) bool {
	for _, n := range list {
		if n == name {
			return true
		}
	}
	return false
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Detectors returns the names of the active detectors, in the order they run.
func (e *Engine) Detectors() []string {
	out := make([]string, len(e.detectors))
	for i, d := range e.detectors {
		out[i] = d.Name()
	}
	return out
}

// Inspect walks raw (a tool call's params in the Request direction, a tool's result in the
// Response direction), runs every detector over every string, and derives the level.
//
// It returns an error wrapping ErrMalformed for invalid JSON or UTF-8, and one wrapping
// ErrCanceled when ctx ends; in both cases the Result still carries a finding explaining why,
// and callers must deny. Caps are not errors: they yield an inspection_capped finding.
func (e *Engine) Inspect(ctx context.Context, tool string, dir Direction, raw json.RawMessage) (res Result, err error) {
	return e.inspect(ctx, tool, dir, raw, nil)
}

// InspectParams is Inspect of a call's parameters in the Request direction, already decoded by
// the one strict parse of the decision path (jsonx.DecodeObject of raw): the detectors see the
// same strings at the same paths, read from params instead of parsing raw a second time. raw
// is still what the size caps and call-level detectors measure. Members are visited in key
// order.
func (e *Engine) InspectParams(ctx context.Context, tool string, raw json.RawMessage, params map[string]any) (res Result, err error) {
	if params == nil || len(bytes.TrimSpace(raw)) == 0 {
		// No parameters at all are not an object: the text walk refuses them as Inspect does.
		return e.inspect(ctx, tool, Request, raw, nil)
	}
	return e.inspect(ctx, tool, Request, raw, params)
}

// inspect is Inspect of raw, or of params when they are set (InspectParams).
func (e *Engine) inspect(ctx context.Context, tool string, dir Direction, raw json.RawMessage, params map[string]any) (res Result, err error) {
	sc := e.pool.Get().(*scratch)
	st := state{e: e, sc: sc, call: &Call{Tool: tool, Direction: dir, Size: len(raw), Config: &e.cfg, Context: ctx}}
	defer func() {
		if r := recover(); r != nil {
			// A detector bug must not take the gateway down, nor let the call through: the call
			// is reported as failed inspection (the caller denies on the error). The scratch is
			// dropped rather than reused, its state being unknown.
			res = Result{Level: threat.High, Capped: true, Findings: []Finding{{Kind: KindInternalError, Severity: threat.High,
				Path: "$", Evidence: clipText(fmt.Sprintf("detector %q panicked: %v", st.det, r), 160), Score: 1, Detector: "engine"}}}
			err = fmt.Errorf("inspect %s: %w: detector %q panicked: %v", tool, ErrInternal, st.det, r)
			return
		}
		sc.findings = sc.findings[:0]
		clear(sc.keys[:cap(sc.keys)]) // the keys of this call's parameters are not kept alive
		sc.val = Value{Decoded: sc.val.Decoded[:0], DecodedFrom: sc.val.DecodedFrom[:0]}
		e.pool.Put(sc)
	}()
	return st.run(ctx, raw, params)
}

// state is one Inspect call in progress.
type state struct {
	e        *Engine
	sc       *scratch
	call     *Call
	det      string // name of the detector running now, stamped on its findings
	dropped  int    // findings beyond MaxFindings
	capped   bool
	values   int
	decoded  int
	work     int // bytes given to the detectors: strings and their decoded readings
	lim      Limits
	deadline time.Time
	ctx      context.Context
	ctxErr   error
	// reportFn is st.report bound once per call: a method value passed through the Detector
	// interface escapes, so binding it per value and detector would allocate each time.
	reportFn func(Finding)
	// key and keyFacts are the previous value's key and what detectors learnt about it (nothing,
	// before the first value).
	key      string
	keyFacts factMemo
	// joined is set while detectors read the joined elements of an array (see arrayJoiner).
	joined bool
	// chars holds the byte classes of the last maxJoinElems values visited (by st.values), which
	// are an array's elements when it ends.
	chars [maxJoinElems]charSet
	// arena holds the lower-cased Norm strings of this call's values (never reused: findings may
	// keep pieces of it).
	arena byteArena
}

func (st *state) report(f Finding) {
	if f.Detector == "" {
		f.Detector = st.det
	}
	fs := st.sc.findings
	if st.joined && f.Detector != "engine" {
		// A joined array's finding counts only where its elements' findings of the same detector
		// fell short of it; it names the array and says it was read joined.
		for i := range fs {
			if p := fs[i].Path; fs[i].Detector == f.Detector && fs[i].Severity >= f.Severity &&
				len(p) > len(f.Path) && p[len(f.Path)] == '[' && p[:len(f.Path)] == f.Path {
				return
			}
		}
		f.Evidence = "array elements joined: " + f.Evidence
	}
	// De-duplicate: one finding per kind and path, keeping the most severe.
	for i := range fs {
		if fs[i].Kind == f.Kind && fs[i].Path == f.Path {
			// Whichever is kept, redaction must cover what both located (an object key and its
			// value share a path, and a key's match is not in the value's text).
			spans, n := mergeSpans(fs[i], f)
			if f.Severity > fs[i].Severity || f.Severity == fs[i].Severity && f.Score > fs[i].Score {
				f.Path = fs[i].Path // (already a copy)
				fs[i] = f
			}
			fs[i].Spans, fs[i].TextLen = spans, n
			return
		}
	}
	if len(fs) >= st.e.cfg.MaxFindings {
		st.dropped++
		return
	}
	f.Path = strings.Clone(f.Path) // Value.Path aliases the walker's path buffer
	st.sc.findings = append(fs, f)
}

func (st *state) capFinding(path, why string) {
	st.capped = true
	st.det = "engine"
	st.report(Finding{Kind: KindCapped, Severity: st.e.cfg.CapSeverity, Path: path, Evidence: why, Score: 1})
}

func (st *state) run(ctx context.Context, raw json.RawMessage, params map[string]any) (Result, error) {
	cfg := &st.e.cfg
	if len(raw) > cfg.MaxBytes {
		st.capFinding("$", fmt.Sprintf("input of %d bytes exceeds the %d-byte cap; not inspected", len(raw), cfg.MaxBytes))
		return st.result(), nil
	}
	if params == nil && !utf8.Valid(raw) {
		st.det = "engine"
		st.report(Finding{Kind: KindMalformed, Severity: threat.High, Path: "$", Evidence: "invalid UTF-8", Score: 1})
		return st.result(), fmt.Errorf("inspect %s: %w: invalid UTF-8", st.call.Tool, ErrMalformed)
	}
	st.ctx = ctx
	st.deadline = time.Now().Add(cfg.TimeBudget)
	if d, ok := ctx.Deadline(); ok && d.Before(st.deadline) {
		st.deadline = d
	}
	st.reportFn = st.report
	st.arena.chunk = min(max(len(raw), 1<<10), 16<<10)
	for _, cd := range st.e.callDets {
		st.det = cd.(Detector).Name()
		cd.InspectCall(st.call, st.reportFn)
	}
	var err error
	if params != nil {
		err = walkValueWith(params, cfg.MaxDepth, st.sc.path, &st.sc.keys, st, len(st.e.joiners) > 0, &st.sc.elems)
	} else {
		err = walkJSONWith(string(raw), cfg.MaxDepth, st.sc.path, st, len(st.e.joiners) > 0, &st.sc.elems)
	}
	switch {
	case err == nil:
	case errors.Is(err, errTooDeep):
		st.capFinding("$", fmt.Sprintf("nesting deeper than %d levels; rest not inspected", cfg.MaxDepth))
	case errors.Is(err, errStop):
		if st.ctxErr != nil {
			return st.result(), fmt.Errorf("inspect %s: %w: %w", st.call.Tool, ErrCanceled, st.ctxErr)
		}
	case errors.Is(err, ErrMalformed):
		st.det = "engine"
		st.report(Finding{Kind: KindMalformed, Severity: threat.High, Path: "$", Evidence: clipText(err.Error(), 120), Score: 1})
		return st.result(), fmt.Errorf("inspect %s: %w", st.call.Tool, err)
	default:
		return st.result(), fmt.Errorf("inspect %s: %w", st.call.Tool, err)
	}
	return st.result(), nil
}

func (st *state) visit(path []byte, key, s string, isKey bool) error {
	cfg := &st.e.cfg
	st.values++
	if st.values > cfg.MaxValues {
		st.capFinding(string(path), fmt.Sprintf("more than %d strings; rest not inspected", cfg.MaxValues))
		return errStop
	}
	if st.values&15 == 0 {
		if err := st.ctx.Err(); err != nil {
			st.ctxErr = err
			st.capFinding(string(path), "inspection canceled: "+err.Error())
			return errStop
		}
		if time.Now().After(st.deadline) {
			st.capped = true
			st.det = "engine"
			st.report(Finding{Kind: KindTimeout, Severity: cfg.CapSeverity, Path: string(path), Score: 1,
				Evidence: fmt.Sprintf("wall-clock guard %v reached after %d strings; rest not inspected", cfg.TimeBudget, st.values)})
			return errStop
		}
	}
	st.work += len(s)
	if st.work > cfg.MaxWork {
		st.capFinding(string(path), fmt.Sprintf("more than %d bytes of work; rest not inspected", cfg.MaxWork))
		return errStop
	}
	err := st.inspect(path, key, s, isKey, nil)
	st.chars[st.values%maxJoinElems] = st.sc.val.chars
	return err
}

// inspect normalises s and runs the detectors over it: all of them, or those at the indexes only.
func (st *state) inspect(path []byte, key, s string, isKey bool, only []int) error {
	cfg := &st.e.cfg
	v := &st.sc.val
	lim := &st.lim // in the (already heap-allocated) state: no allocation per value
	*lim = cfg.Limits
	if rest := cfg.MaxDecodedBytes - st.decoded; rest < lim.MaxDecodedBytes {
		lim.MaxDecodedBytes = max(rest, 0)
	}
	k := key
	if isKey {
		k = ""
	}
	// The path aliases the walker's buffer, which changes after this value: it is valid while the
	// detectors look at v (which they must not retain), and report copies it into findings.
	if normalizeValueIn(v, unsafe.String(unsafe.SliceData(path), len(path)), k, s, lim, &st.arena) {
		st.capFinding(v.Path, "decoded readings of this value exceed the decoding cap")
	}
	v.IsKey = isKey
	if k == st.key {
		v.keyFacts = st.keyFacts // the elements of an array share their key: ask about it once
	}
	for _, d := range v.Decoded {
		st.decoded += len(d)
		st.work += len(d)
	}
	if only == nil {
		for i, d := range st.e.detectors {
			st.det = st.e.names[i]
			d.Inspect(st.call, v, st.reportFn)
		}
	} else {
		for _, i := range only {
			st.det = st.e.names[i]
			st.e.detectors[i].Inspect(st.call, v, st.reportFn)
		}
	}
	st.key, st.keyFacts = k, v.keyFacts
	return nil
}

// array reads the string elements of an array joined, for the arrayJoiners that ask for it:
// concatenated, and separated by spaces. The joined strings count as work like any value.
func (st *state) array(path []byte, key string, elems []string) error {
	var chars charSet
	for j := range elems {
		chars |= st.chars[(st.values-j)%maxJoinElems] // the elements were the last values visited
	}
	var only [8]int
	dets := only[:0]
	for _, i := range st.e.joiners {
		if st.e.detectors[i].(arrayJoiner).joinsArrays(st.call, elems, chars) && len(dets) < len(only) {
			dets = append(dets, i)
		}
	}
	if len(dets) == 0 {
		return nil
	}
	n := len(elems) - 1
	for _, e := range elems {
		n += len(e)
	}
	st.joined = true
	defer func() { st.joined = false }()
	for _, sep := range [...]string{"", " "} {
		st.work += n
		if st.work > st.e.cfg.MaxWork {
			st.joined = false
			st.capFinding(string(path), fmt.Sprintf("more than %d bytes of work; rest not inspected", st.e.cfg.MaxWork))
			return errStop
		}
		// From the arena: findings may keep pieces of the joined text as evidence.
		b := st.arena.alloc(n)[:0]
		for i, e := range elems {
			if i > 0 {
				b = append(b, sep...)
			}
			b = append(b, e...)
		}
		if err := st.inspect(path, key, unsafe.String(unsafe.SliceData(b), len(b)), false, dets); err != nil {
			return err
		}
	}
	return nil
}

func (st *state) result() Result {
	if st.dropped > 0 {
		// The last slot becomes a summary, so the cap is visible and the kept findings stay bounded.
		st.capped = true
		fs := st.sc.findings
		fs[len(fs)-1] = Finding{Kind: KindCapped, Severity: st.e.cfg.CapSeverity, Path: "$", Detector: "engine",
			Evidence: fmt.Sprintf("%d more findings not listed", st.dropped+1), Score: 1}
	}
	out := make([]Finding, len(st.sc.findings))
	copy(out, st.sc.findings)
	return Result{Level: LevelOf(out), Findings: out, Capped: st.capped}
}

// allDetectors is the built-in detector list: the text-attack detectors of this file set and,
// once present, the data-attack detectors.
func allDetectors(cfg *Config) []Detector {
	dets := append(builtinDetectors(cfg.DetectorConfig), textDetectors()...)
	if d := newModelDetector(cfg.Model); d != nil {
		dets = append(dets, d)
	}
	return dets
}

// presenceFamilies are detector families whose findings classify data (PII present) rather than
// evidence an attack; they never take part in the medium→high escalation.
var presenceFamilies = map[string]bool{"pii": true}

// LevelOf derives a call's level from its findings:
//
//  1. the level is the highest severity among the findings (none without findings);
//  2. if at least two different detector families, other than pii, each report a medium finding
//     and nothing is above medium, the level is raised to high: independent weak signals agreeing
//     on one call are a strong one. A finding lowered as a quoted discussion of an attack, or as a
//     persona set-up with no attack part, is not an independent signal.
func LevelOf(fs []Finding) threat.Level {
	lvl := threat.None
	var first string
	independent := false
	for _, f := range fs {
		lvl = max(lvl, f.Severity)
		if f.Severity == threat.Medium && !presenceFamilies[f.Detector] && !f.Quoted && !f.Persona {
			switch {
			case first == "":
				first = f.Detector
			case f.Detector != first:
				independent = true
			}
		}
	}
	if lvl == threat.Medium && independent {
		lvl = threat.High
	}
	return lvl
}

// redact shortens s to at most n bytes on a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
