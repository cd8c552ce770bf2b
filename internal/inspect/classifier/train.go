package classifier

import (
	"math"
	"sort"
)

// Example is one labelled training text, already normalised like Value.Norm.
type Example struct {
	Text   string
	Attack bool
	// Weight is how much the example counts against the others of its class (0 means 1): the
	// corpus holds template families of hundreds of expansions beside single prompts, and a family
	// weighted by its size teaches its template rather than what attacks share.
	Weight float64
}

// weight is e's Weight, 1 when unset.
func (e Example) weight() float64 {
	if e.Weight > 0 {
		return e.Weight
	}
	return 1
}

// Options tune training. The zero value means the defaults.
type Options struct {
	Epochs int     // passes per round (default 2)
	Rounds int     // multiple-instance rounds (default 3)
	LR     float64 // AdaGrad step (default 0.2)
	L2     float64 // weight decay per update of a touched weight (default 1e-6)
	Seed   uint64  // shuffle seed (default 1)
}

func (o *Options) defaults() {
	if o.Epochs <= 0 {
		o.Epochs = 2
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.LR <= 0 {
		o.LR = 0.2
	}
	if o.L2 <= 0 {
		o.L2 = 1e-6
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// window is a training window: features idx[a:b] of one text.
type window struct {
	a, b int32
	text int32
}

// Train fits a model to the examples. It is deterministic: the same examples in the same order
// and the same options give the same weights, bit for bit, on every platform (integer hashing,
// a fixed shuffle, float64 arithmetic with every product rounded before it is added, and an
// exponential written out here rather than taken from a platform's assembly). The thresholds of
// the result are placeholders (0.5, 0.5): set them with WithLogits after calibration.
//
// Training is multiple-instance: a benign text's every window is a negative; an attack text is
// an attack somewhere, so in the first round each of its windows counts as a fraction of a
// positive, and in later rounds only its most suspicious window under the current weights does.
func Train(examples []Example, opt Options) *Model {
	opt.defaults()
	var idx []uint32
	var wins []window
	var tmp []Feature
	first := make([]int32, len(examples)+1) // windows of text i: wins[first[i]:first[i+1]]
	for t, ex := range examples {
		first[t] = int32(len(wins))
		tmp = AppendFeatures(tmp[:0], ex.Text)
		if len(tmp) == 0 {
			continue
		}
		base := int32(len(idx))
		for _, f := range tmp {
			idx = append(idx, f.Index)
		}
		// Windows are runs of blocksPerWindow whole blocks, every strideBlocks, the last one
		// ending with the text: the windows Model.Score looks at, at a coarser stride.
		nb := int32(tmp[len(tmp)-1].Pos/Block + 1)
		at := func(b int32) int32 { // first feature in block ≥ b
			return int32(sort.Search(len(tmp), func(i int) bool { return tmp[i].Pos >= b*Block }))
		}
		if nb <= blocksPerWindow {
			wins = append(wins, window{base, base + int32(len(tmp)), int32(t)})
			continue
		}
		for sb := int32(0); ; sb += strideBlocks {
			if sb+blocksPerWindow > nb {
				sb = nb - blocksPerWindow
			}
			wins = append(wins, window{base + at(sb), base + at(sb+blocksPerWindow), int32(t)})
			if sb+blocksPerWindow >= nb {
				break
			}
		}
	}
	first[len(examples)] = int32(len(wins))

	w := make([]float64, 1<<Bits)
	g2 := make([]float64, 1<<Bits)
	var bias, gb, cbias, gcb float64

	// Class weights: each class carries half the total (each example counted by its weight).
	var negWins, posTexts float64
	for t, ex := range examples {
		if ex.Attack {
			if first[t+1] > first[t] {
				posTexts += ex.weight()
			}
		} else {
			negWins += float64(float64(first[t+1]-first[t]) * ex.weight())
		}
	}
	if negWins == 0 || posTexts == 0 {
		return &Model{w: make([]float32, 1<<Bits), medium: 0.5, high: 0.5}
	}
	posWeight := negWins / posTexts

	type item struct {
		win    int32
		y      float64
		weight float64
	}
	var items []item
	rng := splitmix{opt.Seed}
	for round := 0; round < opt.Rounds; round++ {
		items = items[:0]
		for t, ex := range examples {
			ws := wins[first[t]:first[t+1]]
			if len(ws) == 0 {
				continue
			}
			ew := ex.weight()
			if !ex.Attack {
				for i := range ws {
					items = append(items, item{first[t] + int32(i), 0, ew})
				}
				continue
			}
			if round == 0 {
				for i := range ws {
					items = append(items, item{first[t] + int32(i), 1, float64(posWeight*ew) / float64(len(ws))})
				}
				continue
			}
			bi, bz := 0, math.Inf(-1)
			for i, wn := range ws {
				if z := windowLogit(w, bias, cbias, idx[wn.a:wn.b]); z > bz {
					bi, bz = i, z
				}
			}
			items = append(items, item{first[t] + int32(bi), 1, float64(posWeight * ew)})
		}
		for epoch := 0; epoch < opt.Epochs; epoch++ {
			for i := len(items) - 1; i > 0; i-- {
				j := int(rng.next() % uint64(i+1))
				items[i], items[j] = items[j], items[i]
			}
			for _, it := range items {
				wn := wins[it.win]
				fs := idx[wn.a:wn.b]
				if len(fs) == 0 {
					continue
				}
				n, cn := counts(fs)
				// Two logistic models on one window: the byte and word n-grams, and the
				// concepts alone (the only one that carries to a language never trained on).
				z := bias + channelSum(w, fs, 0)/math.Sqrt(float64(max(n, 1)))
				g := float64((sigmoid(z) - it.y) * it.weight)
				var gj, cgj, cg float64
				if n > 0 {
					gj = float64(g / math.Sqrt(float64(n)))
				}
				if cn > 0 {
					zc := cbias + channelSum(w, fs, ConceptBit)/math.Sqrt(float64(cn))
					cg = float64((sigmoid(zc) - it.y) * it.weight)
					cgj = float64(cg / math.Sqrt(float64(cn)))
				}
				for _, f := range fs {
					j, d := f&^ConceptBit, gj
					if f&ConceptBit != 0 {
						d = cgj
					}
					g2[j] += float64(d * d)
					w[j] -= float64(opt.LR*d) / (math.Sqrt(g2[j]) + 1e-8)
					w[j] -= float64(opt.LR * opt.L2 * w[j])
				}
				gb += float64(g * g)
				bias -= float64(opt.LR*g) / (math.Sqrt(gb) + 1e-8)
				if cn > 0 {
					gcb += float64(cg * cg)
					cbias -= float64(opt.LR*cg) / (math.Sqrt(gcb) + 1e-8)
				}
			}
		}
	}
	m := &Model{w: make([]float32, 1<<Bits), bias: float32(bias), cbias: float32(cbias)}
	for i, x := range w {
		m.w[i] = float32(x)
	}
	m.setLogits(0, 0)
	return m
}

// windowLogit is a window's logit (Model.Score): the larger of the byte and word n-gram
// channel's (its bias and the sum of its weights over √features) and the concept channel's.
func windowLogit(w []float64, bias, cbias float64, fs []uint32) float64 {
	n, cn := counts(fs)
	z := bias + channelSum(w, fs, 0)/math.Sqrt(float64(max(n, 1)))
	if cn > 0 {
		z = max(z, cbias+channelSum(w, fs, ConceptBit)/math.Sqrt(float64(cn)))
	}
	return z
}

// counts returns how many of fs are byte and word features and how many concept features.
func counts(fs []uint32) (n, cn int) {
	for _, j := range fs {
		if j&ConceptBit != 0 {
			cn++
		}
	}
	return len(fs) - cn, cn
}

// channelSum sums the weights of the features of fs in one channel (ConceptBit or 0).
func channelSum(w []float64, fs []uint32, channel uint32) float64 {
	var s float64
	for _, j := range fs {
		if j&ConceptBit == channel {
			s += w[j&^ConceptBit]
		}
	}
	return s
}

// splitmix is SplitMix64: a fixed, portable sequence for the shuffle.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// sigmoid is 1/(1+e^-z) with a portable exponential.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + pexp(-z))
	}
	e := pexp(z)
	return e / (1 + e)
}

// pexp is e^x for x ≤ 0 using only IEEE operations that round the same everywhere: x = k·ln2 + r
// with |r| ≤ ln2/2, a degree-12 Taylor polynomial for e^r (Horner, each step rounded), then 2^k.
func pexp(x float64) float64 {
	if x < -700 {
		return 0
	}
	const ln2 = 0.6931471805599453
	k := math.Floor(float64(x/ln2) + 0.5)
	r := x - float64(k*ln2)
	p := 1.0
	for i := 12; i >= 1; i-- {
		p = 1 + float64(float64(r*p)/float64(i))
	}
	return math.Ldexp(p, int(k))
}
