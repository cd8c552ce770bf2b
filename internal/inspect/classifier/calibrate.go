package classifier

import (
	"hash/fnv"
	"math"
	"sort"
	"sync"
)

// FoldOf assigns a group (Row.Group) to one of k folds by its hash: expansions of one template
// always land in the same fold.
func FoldOf(group string, k int) int {
	h := fnv.New32a()
	h.Write([]byte(group))
	return int(h.Sum32() % uint32(k))
}

// OutOfFold trains k models, each without one fold, and returns every example's score under the
// model that did not see it. Folds run on up to workers goroutines; the result does not depend
// on their number.
func OutOfFold(ex []Example, fold []int, k int, opt Options, workers int) []Score {
	out := make([]Score, len(ex))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(workers, 1))
	for f := 0; f < k; f++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(f int) {
			defer func() { <-sem; wg.Done() }()
			var train []Example
			for i, e := range ex {
				if fold[i] != f {
					train = append(train, e)
				}
			}
			m := Train(train, opt)
			for i, e := range ex {
				if fold[i] == f {
					out[i] = m.Score(e.Text)
				}
			}
		}(f)
	}
	wg.Wait()
	return out
}

// ChooseThresholds picks the thresholds (logits) that keep the false-positive rate of every
// benign set (scores by set name) at or under fpMedium and fpHigh: each threshold is the lowest
// that every set allows, and high is at least medium. A set too small to measure a rate (fewer
// than 1/fp rows, where even one false positive is over the rate) is pooled with the other small
// sets for that level, so that a few dozen rows do not set a threshold by their maximum alone.
func ChooseThresholds(benign map[string][]Score, fpMedium, fpHigh float64) (medium, high float64) {
	return ChooseThresholdsFor(benign, benign, fpMedium, fpHigh)
}

// ChooseThresholdsFor is ChooseThresholds with the high threshold chosen on scores of its own:
// forHigh holds the benign scores as the inspector can report them at high (see HighScore),
// forMedium every benign score.
func ChooseThresholdsFor(forMedium, forHigh map[string][]Score, fpMedium, fpHigh float64) (medium, high float64) {
	level := func(benign map[string][]Score, fp float64) float64 {
		names := make([]string, 0, len(benign))
		for n := range benign {
			names = append(names, n)
		}
		sort.Strings(names)
		z := math.Inf(-1)
		var small []float64
		at := func(ls []float64) float64 {
			sort.Sort(sort.Reverse(sort.Float64Slice(ls)))
			k := int(fp * float64(len(ls))) // this many may pass
			if k >= len(ls) {
				return math.Inf(-1)
			}
			return math.Nextafter(ls[k], math.Inf(1))
		}
		for _, n := range names {
			ls := make([]float64, len(benign[n]))
			for i, s := range benign[n] {
				ls[i] = s.Logit
			}
			if float64(len(ls))*fp < 1 {
				small = append(small, ls...)
				continue
			}
			z = max(z, at(ls))
		}
		if len(small) > 0 {
			z = max(z, at(small))
		}
		return z
	}
	zm, zh := level(forMedium, fpMedium), level(forHigh, fpHigh)
	return zm, max(zh, zm)
}

// HighScore is s as a candidate for a false alarm at high: a persona set-up with no attack part
// that opens the text (PersonaOpening) is reported at medium whatever its score, so it cannot set the high threshold.
// Without this, a collection of role-play prompts set it — the benign rows that score highest
// are set-ups the inspector already keeps at medium — and every attack paid for them.
func HighScore(text string, s Score) Score {
	if PersonaOpening(text) {
		s.Logit = math.Inf(-1)
	}
	return s
}
