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
// that every set allows, and high is at least medium.
func ChooseThresholds(benign map[string][]Score, fpMedium, fpHigh float64) (medium, high float64) {
	// (as logits)
	names := make([]string, 0, len(benign))
	for n := range benign {
		names = append(names, n)
	}
	sort.Strings(names)
	zm, zh := math.Inf(-1), math.Inf(-1)
	for _, n := range names {
		ls := make([]float64, len(benign[n]))
		for i, s := range benign[n] {
			ls[i] = s.Logit
		}
		sort.Sort(sort.Reverse(sort.Float64Slice(ls)))
		at := func(fp float64) float64 {
			k := int(fp * float64(len(ls))) // this many may pass
			if k >= len(ls) {
				return math.Inf(-1)
			}
			return math.Nextafter(ls[k], math.Inf(1))
		}
		zm, zh = max(zm, at(fpMedium)), max(zh, at(fpHigh))
	}
	zh = max(zh, zm)
	return zm, zh
}
