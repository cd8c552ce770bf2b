// Package yamlx holds what the strict YAML readers of the module (policies, the gateway
// configuration) share: where a syntax error is, what a node is in words a user reads, the
// shape rules (no anchors, aliases or custom tags; bounded nesting) and "did you mean".
// It imports nothing from the module.
package yamlx

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var lineRE = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// SyntaxError returns where a decoder's syntax error is (line and column, 1 when unknown) and its
// message without the "yaml: " prefix and the position.
func SyntaxError(err error) (line, col int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	line, col = 1, 1
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			col, _ = strconv.Atoi(m[2])
		}
		msg = strings.TrimSpace(lineRE.ReplaceAllString(msg, ""))
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, ":"), " ")
	}
	return line, col, msg
}

// ShapeError is a node that breaks the shape rules, with the message and the hint to show.
type ShapeError struct {
	Node      *yaml.Node
	Msg, Hint string
}

// CheckShape rejects what a hand-written file never needs and what could make loading
// expensive: aliases and anchors (billion-laughs), custom tags, and nesting deeper than
// maxDepth. what names the file's kind in messages ("policies", "the configuration").
func CheckShape(n *yaml.Node, depth, maxDepth int, what string) *ShapeError {
	if depth > maxDepth {
		return &ShapeError{n, fmt.Sprintf("nesting deeper than %d levels", maxDepth), "a hand-written file needs only a few levels of nesting"}
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return &ShapeError{n, fmt.Sprintf("YAML anchors and aliases are not allowed in %s", what), "write the value out; anchors and aliases make files hard to review"}
	}
	if n.Tag != "" && !strings.HasPrefix(n.Tag, "!!") {
		return &ShapeError{n, fmt.Sprintf("custom YAML tag %s is not allowed", n.Tag), "remove the tag"}
	}
	for _, c := range n.Content {
		if e := CheckShape(c, depth+1, maxDepth, what); e != nil {
			return e
		}
	}
	return nil
}

// UnknownHint is the hint under an unknown key or value: the closest allowed one when it is
// close, and the allowed ones.
func UnknownHint(key string, allowed []string) string {
	if best := Closest(key, allowed); best != "" {
		return fmt.Sprintf("did you mean %q? allowed here: %s", best, strings.Join(allowed, ", "))
	}
	return "allowed here: " + strings.Join(allowed, ", ")
}

// Closest returns the entry of allowed nearest to s by edit distance when it is near enough to
// be a likely typo (at most 3 edits, and fewer than s has letters), or "".
func Closest(s string, allowed []string) string {
	best, bestD := "", 1<<30
	for _, a := range allowed {
		if d := EditDistance(s, a); d < bestD {
			best, bestD = a, d
		}
	}
	if bestD <= 3 && bestD < len(s) {
		return best
	}
	return ""
}

// EditDistance is the Levenshtein distance between a and b; strings over 64 bytes are far from
// everything (the comparison stays cheap on hostile input).
func EditDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Describe says what a node is, in words a user reads: "a mapping", "the string \"x\"".
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", Clip(n.Value))
		case "!!int":
			return "the integer " + Clip(n.Value)
		case "!!float":
			return "the number " + Clip(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "nothing (null)"
		case "!!timestamp":
			return "the date " + Clip(n.Value)
		}
		return fmt.Sprintf("%s %q", n.Tag, Clip(n.Value))
	}
	return "an unexpected node"
}

// Clip shortens a value quoted in a message.
func Clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Errors is a list of a reader's problems as []error, for an error list's Unwrap.
func Errors[E error](list []E) []error {
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = e
	}
	return out
}

// Lines is a list of a reader's problems as one message, a problem a line.
func Lines[E error](list []E) string {
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}
