package main

// The prompt-injection generalisation protocol (-pi): leave-one-source-out and
// leave-one-language-out over the prompt-injection corpus and BIPIA, per direction, for the rules
// alone, the learned model alone, and both.
//
// Each fold trains a model without the held-out rows, the way the embedded model is trained, but
// calibrates its thresholds on a validation split of its own training sources (a fifth of the
// source groups, by hash, kept out of its training), so the held-out rows never influence the
// model or its thresholds. BIPIA is held out as a whole, and scored on its test half.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
	"github.com/portcullis-ai/portcullis/internal/inspect/train/build"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// piRow is a corpus row with its normalised text.
type piRow struct {
	classifier.Row
	norm string
}

// fold is one held-out unit: the rows its model must not see, and the rows it is tested on.
type fold struct {
	name    string
	exclude func(piRow) bool
	test    []piRow
}

// levels are one case's PI levels: rules alone, model alone, both.
type levels [3]threat.Level

var systems = []string{"rules", "model", "rules+model"}

type tally struct {
	n          int
	high, med  [3]int // per system: level ≥ high, ≥ medium
	attack     bool
	name, file string
}

func (t *tally) add(l levels) {
	t.n++
	for i, x := range l {
		if x >= threat.High {
			t.high[i]++
		}
		if x >= threat.Medium {
			t.med[i]++
		}
	}
}

func pct(a, n int) string {
	if n == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(n))
}

// foldFilter keeps the folds -folds names: "sources", "languages", or a comma-separated list of
// held-out repositories and languages; "" keeps all.
func foldFilter(spec string) func(name string, language bool) bool {
	if spec == "" {
		return func(string, bool) bool { return true }
	}
	keep := map[string]bool{}
	for _, n := range strings.Split(spec, ",") {
		keep[strings.TrimSpace(n)] = true
	}
	return func(name string, language bool) bool {
		return keep[name] || language && keep["languages"] || !language && keep["sources"]
	}
}

func runGeneralisation(dataDir, examples string, workers int, rulesOnly bool, only string, show int, opt classifier.Options) error {
	want := foldFilter(only)
	raw, err := build.Rows(dataDir, examples)
	if err != nil {
		return err
	}
	test, err := classifier.LoadBIPIA(dataDir, "test")
	if err != nil {
		return err
	}
	toRows := func(rs []classifier.Row) []piRow {
		out := make([]piRow, len(rs))
		cp := append([]classifier.Row(nil), rs...)
		build.Normalize(cp)
		for i := range rs {
			out[i] = piRow{Row: rs[i], norm: cp[i].Text}
		}
		return out
	}
	rows, bipiaTest := toRows(raw), toRows(test)

	// Leave one source out: every repository with attacks, and every repository of benign text.
	var repos []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.Repo] && r.File != build.OwnFile {
			seen[r.Repo] = true
			repos = append(repos, r.Repo)
		}
	}
	sort.Strings(repos)
	var folds []fold
	for _, repo := range repos {
		if !want(repo, false) {
			continue
		}
		repo := repo
		f := fold{name: repo, exclude: func(r piRow) bool { return r.Repo == repo }}
		if repo == "microsoft/BIPIA" {
			f.test = bipiaTest
		} else {
			for _, r := range rows {
				if r.Repo == repo {
					f.test = append(f.test, r)
				}
			}
		}
		folds = append(folds, f)
	}
	nLOSO := len(folds)
	// Leave one language out: every language with attacks other than English.
	langs := map[string]bool{}
	for _, r := range rows {
		if r.Attack && r.File != build.OwnFile && r.Lang != "en" && r.Lang != "mixed" && r.Lang != "unknown" && r.Lang != "" {
			langs[r.Lang] = true
		}
	}
	for _, l := range build.SortedKeys(langs) {
		if !want(l, true) {
			continue
		}
		l := l
		f := fold{name: l, exclude: func(r piRow) bool { return r.Lang == l }}
		for _, r := range rows {
			if r.Lang == l && r.File != build.OwnFile {
				f.test = append(f.test, r)
			}
		}
		folds = append(folds, f)
	}

	// results[fold][direction][i] for fold.test[i]
	results := make([][2][]levels, len(folds))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(workers, 1))
	for fi := range folds {
		wg.Add(1)
		sem <- struct{}{}
		go func(fi int) {
			defer func() { <-sem; wg.Done() }()
			f := folds[fi]
			if rulesOnly {
				eng := inspect.New(inspect.Config{Model: inspect.ModelConfig{Disabled: true}})
				results[fi] = scoreFold(eng, f.test)
				showErrors(eng, f, results[fi], show)
				return
			}
			var train []classifier.Row
			var calib []classifier.Example
			var calibRows []piRow
			for _, r := range rows {
				if f.exclude(r) {
					continue
				}
				if classifier.FoldOf(r.Group(), build.Folds) == 0 {
					calib, calibRows = append(calib, classifier.Example{Text: r.norm, Attack: r.Attack}), append(calibRows, r)
				} else {
					tr := r.Row
					tr.Text = r.norm
					train = append(train, tr)
				}
			}
			// Weighted as the embedded model's training weighs its rows (build.Examples).
			m := classifier.Train(build.Examples(train), opt)
			benign, benignHigh := map[string][]classifier.Score{}, map[string][]classifier.Score{}
			for i, r := range calibRows {
				if !r.Attack && r.File != build.OwnFile {
					s := m.Score(calib[i].Text)
					benign[r.File] = append(benign[r.File], s)
					// As the embedded model's are (build.Build): see classifier.HighScore.
					benignHigh[r.File] = append(benignHigh[r.File], classifier.HighScore(calib[i].Text, s))
				}
			}
			m = m.WithLogits(classifier.ChooseThresholdsFor(benign, benignHigh, build.FPMedium, build.FPHigh))
			eng := inspect.New(inspect.Config{Model: inspect.ModelConfig{Model: m}})
			results[fi] = scoreFold(eng, f.test)
			showErrors(eng, f, results[fi], show)
			fmt.Fprintf(os.Stderr, "fold %s done\n", f.name)
		}(fi)
	}
	wg.Wait()

	for d, dir := range []string{"request (text as a tool argument)", "response (text as a tool result)"} {
		fmt.Printf("\n#### Leave one source out — %s\n\n", dir)
		printTallies(folds[:nLOSO], results[:nLOSO], d, func(f int) string { return folds[f].name }, true)
		fmt.Printf("\n#### Leave one language out — %s\n\n", dir)
		printTallies(folds[nLOSO:], results[nLOSO:], d, func(f int) string { return folds[nLOSO+f].name }, false)
	}
	return nil
}

// scoreFold inspects every test row in both directions.
func scoreFold(eng *inspect.Engine, test []piRow) (out [2][]levels) {
	for d, dir := range []inspect.Direction{inspect.Request, inspect.Response} {
		out[d] = make([]levels, len(test))
		for i, r := range test {
			out[d][i] = piLevels(eng, dir, r.Text)
		}
	}
	return out
}

// showErrors prints to stderr, for a held-out fold, up to n benign rows of each file that the
// rules and the model together put at high (false alarms), and up to n attacks they leave below
// high (misses), each with the findings behind its level: what to look at when tuning a rule,
// since the pooled rates do not say which rule or window fired. One write per fold, so that
// folds finishing together do not interleave.
func showErrors(eng *inspect.Engine, f fold, res [2][]levels, n int) {
	if n <= 0 {
		return
	}
	var b strings.Builder
	for d, dir := range []inspect.Direction{inspect.Request, inspect.Response} {
		count := map[string]int{}
		for i, l := range res[d] {
			r := f.test[i]
			what := "FP " + r.File
			if r.Attack {
				what = "miss"
			}
			if r.Attack == (l[2] >= threat.High) || count[what] >= n {
				continue
			}
			count[what]++
			tool, raw := "web_search", mustJSON(map[string]any{"query": r.Text})
			if dir == inspect.Response {
				tool, raw = "fetch_page", toolResult(r.Text)
			}
			got, _ := eng.Inspect(context.Background(), tool, dir, raw)
			var why []string
			for _, x := range got.Findings {
				if x.Detector == "injection" || x.Detector == "exfil" || x.Detector == "model" {
					why = append(why, fmt.Sprintf("%s/%s %.3f %q", x.Kind, x.Severity, x.Score, x.Evidence))
				}
			}
			text := r.Text
			if len(text) > 300 {
				text = text[:300] + "…"
			}
			fmt.Fprintf(&b, "[%s %s] %s %s (%s): %q\n    %s\n", f.name, dir, what, r.Lang, r.Source, text, strings.Join(why, "; "))
		}
	}
	os.Stderr.WriteString(b.String())
}

// printTallies prints, per held-out unit, recall (attacks) and false-positive rate (benign, per
// file) at high and at medium for each system, and the pooled figures.
func printTallies(folds []fold, results [][2][]levels, d int, name func(int) string, byFile bool) {
	type key struct{ unit, file string }
	tallies := map[key]*tally{}
	var keys []key
	pooledAtt, pooledEN := &tally{attack: true}, &tally{attack: true}
	benignFiles := map[string]*tally{}
	for fi := range folds {
		test := folds[fi].test
		for i, l := range results[fi][d] {
			r := test[i]
			k := key{name(fi), "attacks"}
			if !r.Attack {
				k.file = r.File
			}
			t := tallies[k]
			if t == nil {
				t = &tally{attack: r.Attack, name: k.unit, file: k.file}
				tallies[k] = t
				keys = append(keys, k)
			}
			t.add(l)
			if r.Attack {
				pooledAtt.add(l)
				if r.Lang == "en" {
					pooledEN.add(l)
				}
			} else {
				bt := benignFiles[r.File]
				if bt == nil {
					bt = &tally{file: r.File}
					benignFiles[r.File] = bt
				}
				bt.add(l)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].unit != keys[j].unit {
			return keys[i].unit < keys[j].unit
		}
		return keys[i].file < keys[j].file
	})
	fmt.Println("| held out | rows | measure | rules @high | rules @medium | model @high | model @medium | rules+model @high | rules+model @medium |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|")
	row := func(unit string, t *tally) {
		what := "recall"
		if !t.attack {
			what = "FP " + strings.TrimPrefix(t.file, "prompt-injection/")
		}
		fmt.Printf("| %s | %d | %s |", unit, t.n, what)
		for s := range systems {
			fmt.Printf(" %s | %s |", pct(t.high[s], t.n), pct(t.med[s], t.n))
		}
		fmt.Println()
	}
	for _, k := range keys {
		row(k.unit, tallies[k])
	}
	row("**all attacks**", pooledAtt)
	if byFile {
		row("**English attacks**", pooledEN)
	}
	for _, f := range build.SortedKeys(benignFiles) {
		row("**all benign**", benignFiles[f])
	}
}

// piLevels inspects text in direction dir and returns the PI level for rules, model, both.
// Only the text-attack families count (injection, exfil, model): a benign document that holds an
// e-mail address is not a prompt-injection false alarm.
func piLevels(eng *inspect.Engine, dir inspect.Direction, text string) levels {
	tool, raw := "web_search", mustJSON(map[string]any{"query": text})
	if dir == inspect.Response {
		tool, raw = "fetch_page", toolResult(text)
	}
	res, _ := eng.Inspect(context.Background(), tool, dir, raw)
	var rules, model []inspect.Finding
	for _, f := range res.Findings {
		switch f.Detector {
		case "injection", "exfil":
			rules = append(rules, f)
		case "model":
			model = append(model, f)
		}
	}
	return levels{inspect.LevelOf(rules), inspect.LevelOf(model), inspect.LevelOf(append(rules, model...))}
}

func defaultExamples() string {
	return filepath.Join(filepath.Dir(defaultHeldOutDir()), "train", "examples.jsonl")
}
