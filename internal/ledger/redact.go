package ledger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/portcullis-ai/portcullis/internal/jsonx"
)

// Redactor reports the JSON paths ("$.a.b", "$.items[2]", `$["odd key"]`) of parameter values
// that must not reach disk. The inspection engine provides one from the secrets it detected;
// the ledger calls it in the appending goroutine, before anything is encoded or hashed, so it
// must be safe for concurrent use.
type Redactor interface {
	SecretPaths(tool string, params json.RawMessage) []string
}

// RedactorFunc adapts a function to a Redactor.
type RedactorFunc func(tool string, params json.RawMessage) []string

// SecretPaths implements Redactor.
func (f RedactorFunc) SecretPaths(tool string, params json.RawMessage) []string {
	return f(tool, params)
}

// DefaultSensitiveParams are parameter names whose values are always redacted, matched
// case-insensitively against object member names at any depth.
var DefaultSensitiveParams = []string{
	"password", "passwd", "secret", "token", "api_key", "apikey", "access_token", "refresh_token",
	"authorization", "private_key", "client_secret", "cookie", "session", "credentials",
}

// Redacted is the placeholder for a removed value when no hash key is configured.
const Redacted = "[REDACTED]"

// Secret directs redaction to one flagged value: its JSON path, a label for what was found there
// (e.g. "aws_access_key", "email") and, when the detector located it, the byte spans of the
// value's text to replace. Only the spans are replaced — "https://evil.example/?x=[REDACTED:
// aws_access_key]" — so that a reader still sees what the value does; without spans, or when the
// spans do not fit the value found at Path (not a string, another length, a span off a character
// boundary), the whole value is replaced, as for a secret path.
type Secret struct {
	Path  string
	Label string
	Spans []Span
	// TextLen is the byte length of the text the spans were found in.
	TextLen int
}

// Span is a byte range [Start, End) of a string value.
type Span struct {
	Start, End int
}

// HashPrefix starts every HMAC written in place of a sensitive value.
const HashPrefix = "hmac-sha256:"

// DefaultMaxParamsBytes bounds the parameters stored in one record; larger parameters are
// recorded by size and hash only.
const DefaultMaxParamsBytes = 1 << 20

// redaction is the configured redaction: sensitive names, the redactor hook and the hash key.
type redaction struct {
	names    map[string]bool
	redactor Redactor
	hashKey  []byte
	maxBytes int
	// collect, when set, receives every text removed (RedactSecrets: one redaction per call,
	// never the ledger's shared one).
	collect *[]string
	// hashes holds keyed hashes of hashKey for rawHash to reuse.
	hashes sync.Pool
}

func newRedaction(names []string, r Redactor, hashKey []byte, maxBytes int) *redaction {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = true
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxParamsBytes
	}
	return &redaction{names: m, redactor: r, hashKey: hashKey, maxBytes: maxBytes}
}

// HashValue is the keyed hash written in place of a sensitive value: HMAC-SHA256 over the
// value's text (a string's characters; any other JSON value's compact encoding), hex, prefixed.
// `portcullis audit hash VALUE` computes the same so an operator can search without the value.
func HashValue(key []byte, text string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(text))
	return hashText(m)
}

// hashText is HashValue's text for what m has hashed, in one allocation.
func hashText(m hash.Hash) string {
	var sum [sha256.Size]byte
	var out [len(HashPrefix) + 2*sha256.Size]byte
	copy(out[:], HashPrefix)
	hex.Encode(out[len(HashPrefix):], m.Sum(sum[:0]))
	return string(out[:])
}

// apply redacts r.Params in place and fills ParamsSize, ParamsHash and Redacted. Parameters
// that are not valid JSON or are too large are dropped (with the reason), never stored raw:
// a record must still be written for a call whose parameters cannot be redacted.
func (rd *redaction) apply(r *Record, extraPaths []string) {
	raw, parsed := r.Params, r.ParamsValue
	r.Params, r.ParamsValue = nil, nil
	r.Redacted = nil
	if len(raw) == 0 {
		return
	}
	r.ParamsSize = len(raw)
	if r.ParamsDropped != "" {
		// The writer withholds them (it says why): only their hash is kept.
		r.ParamsHash = rd.rawHash(raw)
		return
	}
	if len(raw) > rd.maxBytes {
		r.ParamsDropped = fmt.Sprintf("parameters of %d bytes exceed the %d byte limit", len(raw), rd.maxBytes)
		r.ParamsHash = rd.rawHash(raw)
		return
	}
	nothing := len(extraPaths) == 0 && len(r.Secrets) == 0 && rd.redactor == nil && rd.nothingToRedact(raw)
	// encode is how the (redacted) value is stored: canonically when the caller parsed it,
	// compactly as the standard library writes it otherwise.
	encode := json.Marshal
	var v any
	switch {
	case parsed != nil && nothing:
		// The common case, parsed once by the caller: no detector flagged a value and no
		// sensitive name can occur, so the parameters are stored as they are, canonically.
		out, err := jsonx.AppendCanonical(make([]byte, 0, len(raw)), parsed, jsonx.MaxNesting)
		if err != nil {
			r.ParamsDropped = "parameters could not be encoded"
			r.ParamsHash = rd.rawHash(raw)
			return
		}
		rd.store(r, raw, out, nil)
		return
	case parsed != nil:
		v = parsed
		encode = func(v any) ([]byte, error) { return jsonx.AppendCanonical(nil, v, jsonx.MaxNesting) }
	case nothing:
		// The common case for text: stored as they came, compacted (which also validates them),
		// without the decode, walk and re-encode that redaction needs.
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			r.ParamsDropped = "parameters are not valid JSON"
			r.ParamsHash = rd.rawHash(raw)
			return
		}
		rd.store(r, raw, buf.Bytes(), nil)
		return
	default:
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			r.ParamsDropped = "parameters are not valid JSON"
			r.ParamsHash = rd.rawHash(raw)
			return
		}
		if _, err := dec.Token(); err == nil {
			r.ParamsDropped = "parameters are not valid JSON (trailing data)"
			r.ParamsHash = rd.rawHash(raw)
			return
		}
	}
	d := newDirectives(r.Secrets)
	for _, p := range extraPaths {
		d.whole[p] = true
	}
	if rd.redactor != nil {
		for _, p := range rd.redactor.SecretPaths(r.Tool, raw) {
			d.whole[p] = true
		}
	}
	var hit []string
	v, _ = rd.walk(v, "$", false, d, &hit)
	out, err := encode(v)
	if err != nil { // cannot happen for values decoded from JSON; fail safe anyway
		r.ParamsDropped = "parameters could not be re-encoded after redaction"
		r.ParamsHash = rd.rawHash(raw)
		return
	}
	if missing := unmatched(d.paths(), hit); missing != "" {
		// A secret was detected at a path this walk did not find (a different spelling of the
		// path, say). The secret may still be in the parameters: withhold them all.
		r.ParamsDropped = fmt.Sprintf("detected secret at %s not located; parameters withheld", missing)
		r.ParamsHash = rd.rawHash(raw)
		return
	}
	sort.Strings(hit)
	rd.store(r, raw, out, hit)
}

// applyInputs redacts the invoking user's attributes in r.Inputs with the parameters' rules:
// the values of an attribute with a sensitive name are replaced (hashed with the hash key), and
// its name is listed in RedactedAttributes. The caller's Inputs and map are never modified: a
// copy holds the replacements.
func (rd *redaction) applyInputs(r *Record) {
	in := r.Inputs
	if in == nil || len(in.UserAttributes) == 0 {
		return
	}
	var out map[string][]string
	var hit []string
	for k, vs := range in.UserAttributes {
		if !rd.names[strings.ToLower(k)] {
			continue
		}
		if out == nil {
			out = maps.Clone(in.UserAttributes)
		}
		rv := make([]string, len(vs))
		for i, v := range vs {
			rv[i], _ = rd.replacement(v).(string)
		}
		out[k] = rv
		hit = append(hit, k)
	}
	if out == nil {
		return
	}
	c := *in
	c.UserAttributes = out
	sort.Strings(hit)
	c.RedactedAttributes = hit
	r.Inputs = &c
}

// store sets the record's parameters to out (raw after redaction) and their hash.
func (rd *redaction) store(r *Record, raw, out []byte, hit []string) {
	r.Params = out
	r.Redacted = hit
	if rd.hashKey != nil {
		r.ParamsHash = rd.rawHash(raw)
	} else {
		sum := sha256.Sum256(out)
		r.ParamsHash = "sha256:" + hex.EncodeToString(sum[:])
	}
}

// nothingToRedact reports that no object member name in raw is a sensitive name — the walk's
// own test, applied to the text: a string followed by ':' is a member name. Text with a
// backslash (a name could be spelled with escapes) or invalid UTF-8 (the decoder would rewrite
// it) is left to the full walk.
func (rd *redaction) nothingToRedact(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		return false
	}
	var lower [32]byte
	for i := 0; i < len(raw); i++ {
		if raw[i] != '"' {
			continue
		}
		end := bytes.IndexByte(raw[i+1:], '"')
		if end < 0 {
			return true // unterminated: not JSON, which Compact reports
		}
		name := raw[i+1 : i+1+end]
		i += end + 1
		j := i + 1
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
			j++
		}
		if j == len(raw) || raw[j] != ':' {
			continue // a value, not a member name
		}
		if len(name) <= len(lower) && isASCII(name) {
			for k, c := range name {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				lower[k] = c
			}
			if rd.names[string(lower[:len(name)])] {
				return false
			}
		} else if rd.names[strings.ToLower(string(name))] {
			return false
		}
	}
	return true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// rawHash identifies unredacted bytes without revealing them: with a hash key, an HMAC (so
// that a guessable secret cannot be confirmed by hashing guesses); without, nothing is said.
func (rd *redaction) rawHash(raw []byte) string {
	if rd.hashKey == nil {
		return ""
	}
	// Every record's parameters are hashed: the keyed hash is reused (its key schedule is the
	// same for every record) and the text hashed where it lies, not copied into a string.
	m, _ := rd.hashes.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, rd.hashKey)
	}
	m.Reset()
	m.Write(raw)
	s := hashText(m)
	rd.hashes.Put(m)
	return s
}

func (rd *redaction) replacement(v any) any {
	if rd.hashKey == nil && rd.collect == nil {
		return Redacted
	}
	var text string
	switch x := v.(type) {
	case string:
		text = x
	default:
		b, _ := json.Marshal(x)
		text = string(b)
	}
	if rd.collect != nil {
		*rd.collect = append(*rd.collect, text)
	}
	if rd.hashKey == nil {
		return Redacted
	}
	return HashValue(rd.hashKey, text)
}

// directives are the redactions asked for one value: paths replaced whole, and paths whose
// string has spans cut out.
type directives struct {
	whole map[string]bool
	spans map[string]*pathSpans
}

type pathSpans struct {
	textLen int
	spans   []labelled
}

type labelled struct {
	Span
	label string
}

func newDirectives(secrets []Secret) *directives {
	d := &directives{whole: map[string]bool{}, spans: map[string]*pathSpans{}}
	for _, sc := range secrets {
		if len(sc.Spans) == 0 {
			d.whole[sc.Path] = true
			continue
		}
		ps := d.spans[sc.Path]
		if ps == nil {
			ps = &pathSpans{textLen: sc.TextLen}
			d.spans[sc.Path] = ps
		} else if ps.textLen != sc.TextLen {
			d.whole[sc.Path] = true // two readings of one value disagree: trust neither
		}
		for _, sp := range sc.Spans {
			ps.spans = append(ps.spans, labelled{sp, sc.Label})
		}
	}
	return d
}

// has reports a directive for path.
func (d *directives) has(path string) bool {
	return d.whole[path] || d.spans[path] != nil
}

// paths are every path a directive names.
func (d *directives) paths() map[string]bool {
	m := make(map[string]bool, len(d.whole)+len(d.spans))
	for p := range d.whole {
		m[p] = true
	}
	for p := range d.spans {
		m[p] = true
	}
	return m
}

// walk returns v with every value at a secret path or under a sensitive name replaced, and the
// located spans of flagged strings cut out, and whether anything was. v itself is not modified:
// an object or array that holds a replacement is copied (the caller's parsed parameters are
// shared with the rest of the decision).
func (rd *redaction) walk(v any, path string, sensitive bool, d *directives, hit *[]string) (any, bool) {
	if sensitive || d.whole[path] {
		*hit = append(*hit, path)
		return rd.replacement(v), true
	}
	if ps := d.spans[path]; ps != nil {
		*hit = append(*hit, path)
		if s, ok := v.(string); ok {
			if out, ok := rd.cut(s, ps); ok {
				return out, true
			}
		}
		return rd.replacement(v), true
	}
	switch x := v.(type) {
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			p := path + "." + k
			if !d.has(p) && !isIdent(k) {
				p = path + "[" + strconv.Quote(k) + "]"
			}
			if nv, changed := rd.walk(e, p, rd.names[strings.ToLower(k)], d, hit); changed {
				if out == nil {
					out = maps.Clone(x)
				}
				out[k] = nv
			}
		}
		if out != nil {
			return out, true
		}
	case []any:
		var out []any
		for i, e := range x {
			if nv, changed := rd.walk(e, path+"["+strconv.Itoa(i)+"]", false, d, hit); changed {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = nv
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

// cut replaces the spans of s with markers naming what was there. It refuses (and the caller
// replaces the whole value) when s is not the text the spans were found in — another length —
// or a span is empty, out of range or splits a character.
func (rd *redaction) cut(s string, ps *pathSpans) (string, bool) {
	if len(s) != ps.textLen {
		return "", false
	}
	spans := append([]labelled(nil), ps.spans...)
	for _, sp := range spans {
		if sp.Start < 0 || sp.End > len(s) || sp.Start >= sp.End ||
			!utf8.RuneStart(s[sp.Start]) || sp.End < len(s) && !utf8.RuneStart(s[sp.End]) {
			return "", false
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].Start < spans[j].Start })
	// Overlapping or touching spans become one, named by every label in it.
	merged := []labelled{spans[0]}
	for _, sp := range spans[1:] {
		last := &merged[len(merged)-1]
		if sp.Start <= last.End {
			last.End = max(last.End, sp.End)
			if !strings.Contains(","+last.label+",", ","+sp.label+",") {
				last.label += "," + sp.label
			}
			continue
		}
		merged = append(merged, sp)
	}
	var b strings.Builder
	at := 0
	for _, sp := range merged {
		b.WriteString(s[at:sp.Start])
		b.WriteString("[REDACTED:")
		b.WriteString(cleanLabel(sp.label))
		if rd.collect != nil {
			*rd.collect = append(*rd.collect, s[sp.Start:sp.End])
		}
		if rd.hashKey != nil {
			// Searchable like a whole value: `audit hash` of the removed text finds it.
			b.WriteByte(' ')
			b.WriteString(HashValue(rd.hashKey, s[sp.Start:sp.End]))
		}
		b.WriteByte(']')
		at = sp.End
	}
	b.WriteString(s[at:])
	return b.String(), true
}

// cleanLabel keeps a marker's label to [a-z0-9_.,-], so that it cannot close the marker early or
// imitate other text.
func cleanLabel(l string) string {
	if l == "" {
		return "secret"
	}
	b := []byte(l)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ',' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

func isIdent(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// unmatched returns a secret path that was neither redacted nor inside a redacted value.
func unmatched(paths map[string]bool, hit []string) string {
	done := make(map[string]bool, len(hit))
	for _, h := range hit {
		done[h] = true
	}
	for p := range paths {
		if done[p] {
			continue
		}
		covered := false
		for _, h := range hit {
			if strings.HasPrefix(p, h) && len(p) > len(h) && (p[len(h)] == '.' || p[len(h)] == '[') {
				covered = true
				break
			}
		}
		if !covered {
			return p
		}
	}
	return ""
}
