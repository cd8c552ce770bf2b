package inspect

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
)

// updateVerdicts rewrites testdata/verdicts.digest from the engine as it is. Run it only on an
// engine whose verdicts are known good (before a change meant to keep them), never to make a
// failing comparison pass.
var updateVerdicts = flag.Bool("update-verdicts", false, "record the engine's verdict digests in testdata/verdicts.digest")

const verdictsFile = "testdata/verdicts.digest"

// TestVerdictsUnchanged runs the engine over a large mixed corpus — the shared datasets
// (PORTCULLIS_DATASETS), this package's testdata and the benchmark inputs — in both directions,
// and compares every finding (kind, severity, path, evidence, score, detector, spans, quoted) and
// every level with digests recorded from an earlier engine. Work on the engine's speed must not
// change what it finds: any difference names the corpus file where it appears.
//
// The rules are compared always; the rules with the learned classifier only while the model is
// the one the digests were recorded with (a retrained model changes scores by design).
func TestVerdictsUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("the corpus run takes a while")
	}
	corpora := verdictCorpora(t)
	model := modelFingerprint(t)
	got := map[string]string{}
	for _, ec := range []struct {
		name string
		cfg  Config
	}{{"rules", Config{Model: ModelConfig{Disabled: true}}}, {"rules+model@" + model, Config{}}} {
		e := New(ec.cfg)
		for _, c := range corpora {
			got[ec.name+" "+c.name] = verdictDigest(e, c.lines)
		}
	}
	if *updateVerdicts {
		writeVerdicts(t, got)
		return
	}
	want := readVerdicts(t)
	compared := 0
	for k, g := range got {
		w, ok := want[k]
		if !ok {
			if strings.HasPrefix(k, "rules+model@") {
				continue // another model: its scores were not recorded
			}
			if strings.Contains(k, " datasets/") {
				continue // a dataset file the record does not know (datasets absent when recorded)
			}
			t.Errorf("%s: no recorded digest (record with -update-verdicts on the engine before the change)", k)
			continue
		}
		compared++
		if g != w {
			t.Errorf("%s: verdicts changed: got %s, recorded %s", k, g, w)
		}
	}
	if compared == 0 {
		t.Fatal("nothing compared")
	}
	t.Logf("%d corpus digests compared (model %s)", compared, model)
	// Recorded digests this run did not produce: a dataset file gone from the datasets, or the
	// datasets absent. Either way most of the record went unchecked, which must not read as a pass.
	var missing []string
	for k := range want {
		if _, ok := got[k]; !ok && strings.Contains(k, " datasets/") {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		if os.Getenv("PORTCULLIS_DATASETS") != "" {
			t.Errorf("%d recorded dataset digests were not produced (first: %s)", len(missing), missing[0])
		} else {
			t.Skipf("%d of the recorded digests are of the shared datasets; set PORTCULLIS_DATASETS to check them", len(missing))
		}
	}
}

type verdictCorpus struct {
	name  string
	lines []string
}

// verdictCorpora returns the corpus files, one entry per file, each as its non-empty lines.
func verdictCorpora(t *testing.T) []verdictCorpus {
	var out []verdictCorpus
	add := func(prefix, root string) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			ext := filepath.Ext(p)
			if d.IsDir() || ext != ".txt" && ext != ".jsonl" {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			out = append(out, verdictCorpus{prefix + filepath.ToSlash(rel), readLines(t, p)})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	add("testdata/", "testdata")
	if dir := os.Getenv("PORTCULLIS_DATASETS"); dir != "" {
		add("datasets/", dir)
	}
	bench := []string{string(sampleArgs(1024)), string(sampleArgs(64 << 10)), string(sampleText(64 << 10))}
	for _, v := range benchArgs() {
		bench = append(bench, v.Raw)
	}
	out = append(out, verdictCorpus{"bench", bench})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func readLines(t *testing.T, p string) []string {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// verdictDigest inspects every line as a request argument and as a tool result (a JSON line as
// it is, any other line as an MCP text block) and hashes the outcomes. It returns the number of
// calls, of findings and the hash.
func verdictDigest(e *Engine, lines []string) string {
	h := sha256.New()
	calls, findings := 0, 0
	record := func(res Result, err error) {
		calls++
		findings += len(res.Findings)
		fmt.Fprintf(h, "L%d C%t E%v\n", res.Level, res.Capped, err)
		for _, f := range res.Findings {
			fmt.Fprintf(h, "%s|%d|%s|%q|%s|%s|%v|%d|%t\n", f.Kind, f.Severity, f.Path, f.Evidence,
				strconv.FormatFloat(f.Score, 'g', -1, 64), f.Detector, f.Spans, f.TextLen, f.Quoted)
		}
	}
	ctx := context.Background()
	for _, l := range lines {
		arg, _ := json.Marshal(map[string]string{"input": l})
		record(e.Inspect(ctx, "run_query", Request, arg))
		raw := []byte(l)
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' && t[0] != '[' || !json.Valid(t) {
			raw, _ = json.Marshal(map[string]any{"content": []any{map[string]any{"type": "text", "text": l}}})
		}
		record(e.Inspect(ctx, "fetch", Response, raw))
	}
	sum := h.Sum(nil)
	return fmt.Sprintf("calls=%d findings=%d sha256=%s", calls, findings, hex.EncodeToString(sum[:12]))
}

// modelFingerprint names the embedded model by a hash of its bytes.
func modelFingerprint(t *testing.T) string {
	sum := sha256.Sum256(classifier.Embedded())
	return hex.EncodeToString(sum[:6])
}

func readVerdicts(t *testing.T) map[string]string {
	data, err := os.ReadFile(verdictsFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.SplitN(l, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("%s: bad line %q", verdictsFile, l)
		}
		out[f[0]+" "+f[1]] = f[2]
	}
	return out
}

func writeVerdicts(t *testing.T, got map[string]string) {
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# engine configuration\tcorpus file\tverdict digest (go test ./internal/inspect/ -run TestVerdictsUnchanged -update-verdicts)\n")
	for _, k := range keys {
		cfg, file, _ := strings.Cut(k, " ")
		fmt.Fprintf(&b, "%s\t%s\t%s\n", cfg, file, got[k])
	}
	if err := os.WriteFile(verdictsFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
