package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/inspect"
)

// load builds every suite from the datasets directory.
func load(dir string) ([]suite, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("datasets directory: %w", err)
	}
	var all []suite
	for _, f := range []func(string) ([]suite, error){loadBIPIA, loadPayloads, loadPresidio, loadSecrets, loadBFCL} {
		s, err := f(dir)
		if err != nil {
			return nil, err
		}
		all = append(all, s...)
	}
	return all, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// dedup keeps the first case per key.
type dedup map[string]bool

func (d dedup) first(key string) bool {
	k := strings.ToLower(strings.TrimSpace(key))
	if d[k] {
		return false
	}
	d[k] = true
	return true
}

func readLines(path string, fn func(line string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if err := fn(sc.Text()); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	return sc.Err()
}

// toolResult wraps text the way an MCP tool result carries it.
func toolResult(text string) json.RawMessage {
	return mustJSON(map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}})
}

func loadBIPIA(dir string) ([]suite, error) {
	base := filepath.Join(dir, "bipia")
	type ctxRow struct {
		Context json.RawMessage `json:"context"`
	}
	var contexts []string
	var ctxByKind [3][]string
	for k, kind := range []string{"email", "table", "code"} {
		for _, split := range []string{"train", "test"} {
			err := readLines(filepath.Join(base, kind, split+".jsonl"), func(line string) error {
				var r ctxRow
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					return err
				}
				// Code contexts are a list of lines; the others a string.
				var text string
				var lines []string
				if json.Unmarshal(r.Context, &lines) == nil {
					text = strings.Join(lines, "\n")
				} else if err := json.Unmarshal(r.Context, &text); err != nil {
					return err
				}
				ctxByKind[k] = append(ctxByKind[k], text)
				contexts = append(contexts, text)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	clean := suite{dataset: "bipia", name: "clean contexts (response)", detector: "injection"}
	seen := dedup{}
	for _, c := range contexts {
		if seen.first(c) {
			clean.cases = append(clean.cases, tcase{tool: "fetch_document", dir: inspect.Response, raw: toolResult(c), note: c})
		}
	}
	var out []suite
	for _, kind := range []string{"text", "code"} {
		s := suite{dataset: "bipia", name: kind + " attacks in contexts (response)", detector: "injection"}
		seenA := dedup{}
		n := 0
		for _, split := range []string{"train", "test"} {
			var m map[string][]string
			b, err := os.ReadFile(filepath.Join(base, kind+"_attack_"+split+".json"))
			if err != nil {
				return nil, fmt.Errorf("read bipia: %w", err)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				return nil, fmt.Errorf("parse bipia %s attacks: %w", kind, err)
			}
			cats := make([]string, 0, len(m))
			for c := range m {
				cats = append(cats, c)
			}
			sort.Strings(cats)
			for _, cat := range cats {
				for _, a := range m[cat] {
					if !seenA.first(a) {
						continue
					}
					// Each attack goes into one context of each kind (chosen deterministically), at the
					// start, the middle and the end.
					for k := range ctxByKind {
						pool := ctxByKind[k]
						if kind == "code" && k != 2 {
							continue // code attacks target code Q&A contexts, as upstream builds them
						}
						c := pool[(n*7+k*13)%len(pool)]
						for pos := 0; pos < 3; pos++ {
							text := classifier.Plant(c, a, pos)
							s.cases = append(s.cases, tcase{tool: "fetch_document", dir: inspect.Response, raw: toolResult(text), positive: true, note: a})
						}
					}
					n++
				}
			}
		}
		out = append(out, s)
	}
	// The clean contexts are the negatives of both attack suites; merge them into each so each
	// row has a full confusion matrix.
	for i := range out {
		out[i].cases = append(out[i].cases, clean.cases...)
	}
	// The code attacks plant exfiltration and malware: score the exfil detector on them too.
	code := out[1]
	code.name = "code attacks in contexts (response)"
	code.detector = "exfil"
	return append(out, code), nil
}

// payloadTools places each payload family in the argument of a plausible tool.
var payloadTools = map[string]struct {
	detector, tool, param string
}{
	"sql-injection":       {"sql", "search_customers", "name"},
	"directory-traversal": {"path", "read_file", "path"},
	"file-inclusion":      {"path", "read_file", "path"},
	"command-injection":   {"command", "ping_host", "host"},
	"nosql-injection":     {"nosql", "find_users", "username"},
}

// loadHeldOut reads the team's own hand-written prompt-injection sets (testdata/injection_heldout*.jsonl),
// scored through the whole engine: any prompt_injection.* or exfiltration finding counts.
func loadHeldOut(dir string) ([]suite, error) {
	files, err := filepath.Glob(filepath.Join(dir, "injection_heldout*.jsonl"))
	if err != nil || len(files) == 0 {
		return nil, err
	}
	var out []suite
	for _, f := range files {
		s := suite{dataset: "own held-out", name: filepath.Base(f), detector: "injection+exfil"}
		err := readLines(f, func(line string) error {
			var r struct {
				Direction, Text string
				Attack          bool
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return err
			}
			d := inspect.Request
			if r.Direction == "response" {
				d = inspect.Response
			}
			s.cases = append(s.cases, tcase{tool: "tool", dir: d, raw: mustJSON(map[string]any{"text": r.Text}), positive: r.Attack, note: r.Text})
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func loadPayloads(dir string) ([]suite, error) {
	base := filepath.Join(dir, "payloadsallthethings")
	var out []suite
	for _, fam := range []string{"sql-injection", "directory-traversal", "file-inclusion", "command-injection", "nosql-injection"} {
		pt := payloadTools[fam]
		files, err := filepath.Glob(filepath.Join(base, fam, "*.txt"))
		if err != nil {
			return nil, err
		}
		main := suite{dataset: "payloadsallthethings", name: fam, detector: pt.detector}
		targets := suite{dataset: "payloadsallthethings", name: fam + " (target-path lists)", detector: pt.detector}
		seen := dedup{}
		for _, f := range files {
			s := &main
			// *-files.txt list sensitive target paths, not traversal sequences: scored apart.
			if strings.HasSuffix(f, "-files.txt") {
				s = &targets
			}
			err := readLines(f, func(line string) error {
				p := strings.TrimRight(line, "\r")
				if len(strings.TrimSpace(p)) < 4 || !seen.first(p) {
					return nil // one-to-three-character fragments are not meaningful attacks
				}
				var params map[string]any
				// A payload that is itself a JSON object is sent as structured params (NoSQL operators).
				var obj map[string]any
				if strings.HasPrefix(strings.TrimSpace(p), "{") && json.Unmarshal([]byte(p), &obj) == nil {
					params = map[string]any{pt.param: obj}
				} else {
					params = map[string]any{pt.param: p}
				}
				s.cases = append(s.cases, tcase{tool: pt.tool, dir: inspect.Request, raw: mustJSON(params), positive: true, note: p})
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		out = append(out, main)
		if len(targets.cases) > 0 {
			out = append(out, targets)
		}
	}
	ssrf := suite{dataset: "payloadsallthethings", name: "ssrf", detector: "ssrf"}
	seen := dedup{}
	err := readLines(filepath.Join(base, "ssrf", "ssrf_payloads_extracted.jsonl"), func(line string) error {
		var r struct {
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		if seen.first(r.Payload) {
			ssrf.cases = append(ssrf.cases, tcase{tool: "fetch_url", dir: inspect.Request, raw: mustJSON(map[string]any{"url": r.Payload}), positive: true, note: r.Payload})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return append(out, ssrf), nil
}

// presidioKinds maps the in-scope presidio entity types to the substring their finding kind carries.
var presidioKinds = []struct{ entity, kind string }{
	{"EMAIL_ADDRESS", "email"}, {"CREDIT_CARD", "card"}, {"PHONE_NUMBER", "phone"},
	{"US_SSN", "ssn"}, {"IBAN_CODE", "iban"}, {"IP_ADDRESS", "ip"},
}

func loadPresidio(dir string) ([]suite, error) {
	b, err := os.ReadFile(filepath.Join(dir, "presidio-synth", "synth_dataset_v2.json"))
	if err != nil {
		return nil, fmt.Errorf("read presidio: %w", err)
	}
	var rows []struct {
		FullText string `json:"full_text"`
		Spans    []struct {
			EntityType string `json:"entity_type"`
		} `json:"spans"`
	}
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, fmt.Errorf("parse presidio: %w", err)
	}
	var out []suite
	for _, pk := range presidioKinds {
		s := suite{dataset: "presidio-synth", name: "PII " + pk.entity, detector: "pii", kind: pk.kind}
		seen := dedup{}
		for _, r := range rows {
			if !seen.first(r.FullText) {
				continue
			}
			has := false
			for _, sp := range r.Spans {
				has = has || sp.EntityType == pk.entity
			}
			s.cases = append(s.cases, tcase{tool: "send_message", dir: inspect.Request, raw: mustJSON(map[string]any{"body": r.FullText}), positive: has, note: r.FullText})
		}
		out = append(out, s)
	}
	return out, nil
}

func loadSecrets(dir string) ([]suite, error) {
	s := suite{dataset: "noseyparker-secrets", name: "secrets (negatives: not_this_rule)", detector: "secrets"}
	seen := dedup{}
	err := readLines(filepath.Join(dir, "noseyparker-secrets", "rule_examples.jsonl"), func(line string) error {
		var r struct {
			Text, Label string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		if seen.first(r.Text) {
			s.cases = append(s.cases, tcase{tool: "write_file", dir: inspect.Request, raw: mustJSON(map[string]any{"path": "/srv/app/config.txt", "content": r.Text}), positive: r.Label == "secret", note: r.Text})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []suite{s}, nil
}

func loadBFCL(dir string) ([]suite, error) {
	base := filepath.Join(dir, "bfcl")
	calls := suite{dataset: "bfcl", name: "ground-truth calls (request)", detector: "*"}
	questions := suite{dataset: "bfcl", name: "user questions as query args (request)", detector: "*"}
	rest := suite{dataset: "bfcl", name: "REST results (response)", detector: "*"}
	seen := dedup{}
	addCall := func(tool string, args map[string]any) {
		raw := mustJSON(args)
		if seen.first(tool + string(raw)) {
			calls.cases = append(calls.cases, tcase{tool: tool, dir: inspect.Request, raw: raw, note: tool + " " + string(raw)})
		}
	}
	answerFiles, _ := filepath.Glob(filepath.Join(base, "possible_answer", "*.json"))
	more, _ := filepath.Glob(filepath.Join(base, "unused_datasets", "possible_answer", "*.json"))
	for _, f := range append(answerFiles, more...) {
		err := readLines(f, func(line string) error {
			var r struct {
				GroundTruth json.RawMessage `json:"ground_truth"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return err
			}
			gt := r.GroundTruth
			var asString string
			if json.Unmarshal(gt, &asString) == nil { // REST: a JSON document as a string = a tool result
				if json.Valid([]byte(asString)) && seen.first(asString) {
					rest.cases = append(rest.cases, tcase{tool: "http_get", dir: inspect.Response, raw: json.RawMessage(asString), note: asString})
				}
				return nil
			}
			var dicts []map[string]map[string][]any
			if json.Unmarshal(gt, &dicts) == nil {
				for _, d := range dicts {
					for fn, params := range d {
						args := map[string]any{}
						for p, vals := range params {
							for _, v := range vals {
								if s, ok := v.(string); ok && s == "" {
									continue
								}
								args[p] = v
								break
							}
						}
						addCall(fn, args)
					}
				}
				return nil
			}
			var flat []string
			var nested [][]string
			if json.Unmarshal(gt, &nested) == nil {
				for _, n := range nested {
					flat = append(flat, n...)
				}
			} else if json.Unmarshal(gt, &flat) != nil {
				return nil
			}
			for _, c := range flat {
				if name, args, err := parsePyCall(c); err == nil {
					addCall(name, args)
				}
				// Memory/web-search answers are plain strings, not calls: they carry no arguments.
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	qfiles, _ := filepath.Glob(filepath.Join(base, "BFCL_v4_*.json"))
	moreQ, _ := filepath.Glob(filepath.Join(base, "unused_datasets", "question", "*.json"))
	for _, f := range append(qfiles, moreQ...) {
		if strings.HasSuffix(f, "format_sensitivity.json") {
			continue
		}
		err := readLines(f, func(line string) error {
			var r struct {
				Question json.RawMessage `json:"question"`
			}
			if json.Unmarshal([]byte(line), &r) != nil {
				return nil
			}
			var turns [][]struct{ Role, Content string }
			if json.Unmarshal(r.Question, &turns) != nil {
				var one []struct{ Role, Content string }
				if json.Unmarshal(r.Question, &one) != nil {
					return nil
				}
				turns = [][]struct{ Role, Content string }{one}
			}
			for _, t := range turns {
				for _, m := range t {
					if m.Role == "user" && m.Content != "" && seen.first(m.Content) {
						questions.cases = append(questions.cases, tcase{tool: "web_search", dir: inspect.Request, raw: mustJSON(map[string]any{"query": m.Content}), note: m.Content})
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return []suite{calls, questions, rest}, nil
}
