package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-ai/portcullis/internal/yamlx"
)

// Reading limits: a configuration is a short hand-written file; anything far larger or deeper is
// a mistake or an attack, refused before it costs memory or time.
const (
	MaxFileBytes = 4 << 20
	maxDepth     = 32
	maxErrors    = 100
)

// Error is one problem in a configuration file: where it is, the key path, what is wrong and,
// when there is one, a hint (the closest allowed key, the syntax wanted).
type Error struct {
	File      string
	Line, Col int
	Key       string // e.g. "limits.max_body_bytes", "approvals.approvers[1].id"
	Msg       string
	Hint      string
}

func (e *Error) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Is makes every *Error match ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// ErrorList is every problem found in a file; a file with any is never used.
type ErrorList []*Error

func (l ErrorList) Error() string { return yamlx.Lines(l) }

// Is makes an ErrorList match ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the individual errors.
func (l ErrorList) Unwrap() []error { return yamlx.Errors(l) }

const docsHint = "see docs/configuration.md for every key and its values"

// Parse decodes data over the defaults and validates the result. Every problem is returned at
// once as an ErrorList, each at its file:line:col with its key path; name is the file's name in
// messages. Unknown keys, wrong types and values a reader could misread (a duration without a
// unit) are errors; durations are written 500ms, 5s, 1m30s, 2h or 7d, sizes 1048576, 512KiB, 8MiB
// or 1GB.
func Parse(name string, data []byte) (*Config, error) {
	w := &walker{file: name, pos: map[string]*yaml.Node{}, bad: map[string]bool{}}
	at := func(line, col int, msg, hint string) (*Config, error) {
		return nil, ErrorList{{File: name, Line: line, Col: col, Msg: msg, Hint: hint}}
	}
	if len(data) > MaxFileBytes {
		return at(1, 1, fmt.Sprintf("file is %d bytes, larger than the limit of %d MiB", len(data), MaxFileBytes>>20), "a configuration is a short file; policies go in their own files")
	}
	if !utf8.Valid(data) {
		return at(1, 1, "file is not valid UTF-8", "save the file as UTF-8")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		line, col, msg := yamlx.SyntaxError(err)
		return at(line, col, "YAML syntax error: "+msg, "check the indentation and quoting on this line and the one before")
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := 1
		if err == nil {
			line = extra.Line
		}
		return at(line, 1, "only one YAML document is allowed", "remove the '---' and what follows it, or merge it into the first document")
	}
	c := Default()
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if e := yamlx.CheckShape(root, 1, maxDepth, "the configuration"); e != nil {
			return at(e.Node.Line, e.Node.Column, e.Msg, e.Hint)
		}
		w.pos[""] = root
		w.walk(root, reflect.TypeFor[Config](), "")
		if err := root.Decode(&c); err != nil {
			// The walk admits only what decodes; should a case slip through, say where without the
			// decoder's type names.
			line, col, _ := yamlx.SyntaxError(err)
			w.errs = append(w.errs, &Error{File: name, Line: line, Col: col, Msg: "this value cannot be read", Hint: docsHint})
		}
	}
	for _, p := range c.problems() {
		if w.under(p.path) {
			continue // a consequence of a problem already reported
		}
		n := w.nearest(p.path)
		line, col := 1, 1
		if n != nil {
			line, col = n.Line, n.Column
		}
		w.errs = append(w.errs, &Error{File: name, Line: line, Col: col, Key: p.path, Msg: p.msg})
	}
	if len(w.errs) == 0 {
		return &c, nil
	}
	sort.SliceStable(w.errs, func(i, j int) bool {
		a, b := w.errs[i], w.errs[j]
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	if len(w.errs) > maxErrors {
		more := len(w.errs) - maxErrors
		last := w.errs[maxErrors-1]
		w.errs = append(w.errs[:maxErrors], &Error{File: name, Line: last.Line, Col: last.Col, Msg: fmt.Sprintf("and %d more problems", more), Hint: "fix these first"})
	}
	return nil, w.errs
}

// walker checks a YAML tree against the configuration's types before it is decoded: every
// problem is collected with its position, and a bad value is taken out of the tree so that its
// default stays and the rest can still be decoded and validated.
type walker struct {
	file string
	errs ErrorList
	pos  map[string]*yaml.Node // key path → the node of its key (or list item)
	bad  map[string]bool       // key paths already reported
}

func (w *walker) errorf(n *yaml.Node, path, hint, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Line: n.Line, Col: n.Column, Key: path, Msg: fmt.Sprintf(format, args...), Hint: hint})
	w.bad[path] = true
}

// under reports whether path is, or lies under, a path already reported.
func (w *walker) under(path string) bool {
	for p := path; ; p = parent(p) {
		if w.bad[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

// nearest returns the node of path, or of its closest ancestor present in the file.
func (w *walker) nearest(path string) *yaml.Node {
	for p := path; ; p = parent(p) {
		if n, ok := w.pos[p]; ok {
			return n
		}
		if p == "" {
			return nil
		}
	}
}

// parent strips the last ".key" or "[i]" of a key path.
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	nullNode     = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
)

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// walk checks n against t and reports whether it may be decoded; it rewrites durations and sizes
// into the decoder's form.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) bool {
	if isNull(n) {
		return true // an empty value: the decoder leaves the default or clears the list
	}
	switch {
	case t == durationType:
		return w.duration(n, path)
	case t == timeType:
		var v time.Time
		if n.Kind != yaml.ScalarNode || n.Decode(&v) != nil {
			w.errorf(n, path, "write an RFC 3339 date and time, e.g. 2027-01-31T00:00:00Z", "want a date and time, got %s", yamlx.Describe(n))
			return false
		}
		return true
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.walk(n, t.Elem(), path)
	case reflect.Struct:
		return w.object(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.errorf(n, path, "write one 'name: value' line per entry, indented under the key", "want a mapping, got %s", yamlx.Describe(n))
			return false
		}
		w.entries(n, path, func(key string, k, v *yaml.Node) bool { return w.walk(v, t.Elem(), join(path, key)) })
		return true
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.errorf(n, path, "write a list: [a, b] or one '- item' line per entry", "want a list, got %s", yamlx.Describe(n))
			return false
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.pos[p] = e
			if !w.walk(e, t.Elem(), p) {
				n.Content[i] = &nullNode
			}
		}
		return true
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.errorf(n, path, "", "want a single value, got %s", yamlx.Describe(n))
			return false
		}
		return true
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.errorf(n, path, "write true or false, without quotes", "want true or false, got %s", yamlx.Describe(n))
			return false
		}
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return w.integer(n, t, path)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
			w.errorf(n, path, "write a number without quotes, e.g. 0.5", "want a number, got %s", yamlx.Describe(n))
			return false
		}
		return true
	}
	w.errorf(n, path, docsHint, "this key cannot be set here")
	return false
}

// fieldsOf maps the YAML keys of a struct type to their field types, inline fields flattened.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			for k, v := range fieldsOf(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func (w *walker) object(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "write one 'key: value' line per setting, indented under the key", "want a mapping, got %s", yamlx.Describe(n))
		return false
	}
	fields := fieldsOf(t)
	w.entries(n, path, func(key string, k, v *yaml.Node) bool {
		ft, ok := fields[key]
		if !ok {
			allowed := make([]string, 0, len(fields))
			for name := range fields {
				allowed = append(allowed, name)
			}
			sort.Strings(allowed)
			w.errorf(k, join(path, key), yamlx.UnknownHint(key, allowed), "unknown key %q", yamlx.Clip(key))
			return false
		}
		return w.walk(v, ft, join(path, key))
	})
	return true
}

// entries walks a mapping's entries, reporting keys that are not plain strings and keys written
// twice, and drops the entries check refuses.
func (w *walker) entries(n *yaml.Node, path string, check func(key string, k, v *yaml.Node) bool) {
	seen := map[string]*yaml.Node{}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || isNull(k) {
			w.errorf(k, path, "keys are plain names", "a key must be a name, got %s", yamlx.Describe(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			w.errorf(k, p, fmt.Sprintf("the first is at line %d; remove one of the two", first.Line), "key %q written twice", yamlx.Clip(k.Value))
			continue
		}
		seen[k.Value] = k
		w.pos[p] = k
		if v.Kind == yaml.ScalarNode {
			w.pos[p] = v // a value's problem is shown at the value
		}
		if check(k.Value, k, v) {
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
}

var durationHint = "write a number and a unit: 500ms, 5s, 1m30s, 2h or 7d"

// durationWords reads durations written in words ("5 seconds") to suggest the form to write.
var durationWords = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)$`)

func (w *walker) duration(n *yaml.Node, path string) bool {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" && n.Value == "0" {
		n.Tag, n.Value = "!!str", "0s"
		return true
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		hint := durationHint
		if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
			hint = fmt.Sprintf("a number alone has no unit: write %ss for seconds, %sm for minutes", n.Value, n.Value)
		}
		w.errorf(n, path, hint, "want a duration, got %s", yamlx.Describe(n))
		return false
	}
	d, err := ParseDuration(n.Value)
	if err != nil {
		hint := durationHint
		if m := durationWords.FindStringSubmatch(strings.ToLower(strings.TrimSpace(n.Value))); m != nil {
			hint = fmt.Sprintf("did you mean %q? %s", m[1]+shortUnit(m[2]), durationHint)
		}
		w.errorf(n, path, hint, "want a duration, got %s", yamlx.Describe(n))
		return false
	}
	n.Value = d.String()
	return true
}

func shortUnit(u string) string {
	switch {
	case u == "ns" || u == "us" || u == "µs" || u == "ms":
		return u
	case strings.HasPrefix(u, "s"):
		return "s"
	case strings.HasPrefix(u, "m"):
		return "m"
	case strings.HasPrefix(u, "h"):
		return "h"
	}
	return "d"
}

// ParseDuration reads a duration as the configuration writes it: Go's syntax (500ms, 5s, 1m30s,
// 2h) and whole days (7d, 1d12h).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days := 0
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > 100_000 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days, s = n, s[i+1:]
		if s == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || (days > 0 && d < 0) {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return time.Duration(days)*24*time.Hour + d, nil
}

var sizeRE = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$`)

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
}

// ParseSize reads a byte size: a whole number of bytes, or a number and a unit (KB, MB, GB are
// powers of 1000; KiB, MiB, GiB powers of 1024; case does not matter).
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	mult, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q", m[2])
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	v *= mult
	if v != math.Trunc(v) || v > math.MaxInt32*16 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(v), nil
}

var wholeRE = regexp.MustCompile(`^[-+]?[0-9]+$`)

const sizeHint = "write bytes or a number and a unit: 1048576, 512KiB, 8MiB, 1GB"

func (w *walker) integer(n *yaml.Node, t reflect.Type, path string) bool {
	size := strings.HasSuffix(path, "_bytes")
	if size && n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		v, err := ParseSize(n.Value)
		if err != nil {
			w.errorf(n, path, sizeHint, "want a size, got %s", yamlx.Describe(n))
			return false
		}
		n.Tag, n.Value = "!!int", strconv.FormatInt(v, 10)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!float" && wholeRE.MatchString(n.Value) {
		w.errorf(n, path, "", "number %s is out of range", yamlx.Clip(n.Value))
		return false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		hint := "write a whole number without quotes"
		switch {
		case size:
			hint = sizeHint
		case strings.HasSuffix(path, "_seconds"):
			hint = "this key counts seconds: write 30, not 30s"
		case strings.HasSuffix(path, "_ms"):
			hint = "this key counts milliseconds: write 5000, not 5s"
		}
		w.errorf(n, path, hint, "want a whole number, got %s", yamlx.Describe(n))
		return false
	}
	if _, err := strconv.ParseInt(n.Value, 0, t.Bits()); err != nil {
		w.errorf(n, path, "", "number %s is out of range", yamlx.Clip(n.Value))
		return false
	}
	return true
}
