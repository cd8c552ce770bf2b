package classifier

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refScore is Score written the slow way, from AppendFeatures (the features training sees) and
// the block windows Train cuts: the two must agree.
func refScore(m *Model, text string) float64 {
	fs := AppendFeatures(nil, text)
	if len(fs) == 0 {
		return float64(m.bias)
	}
	nb := int(fs[len(fs)-1].Pos/Block) + 1
	sums, csums := make([]float64, nb), make([]float64, nb)
	cnts, ccnts := make([]int, nb), make([]int, nb)
	for _, f := range fs {
		b := int(f.Pos / Block)
		if f.Index&ConceptBit != 0 {
			csums[b] += float64(m.w[f.Index&^ConceptBit])
			ccnts[b]++
			continue
		}
		sums[b] += float64(m.w[f.Index])
		cnts[b]++
	}
	best := math.Inf(-1)
	win := func(a, b int) {
		var s, cs float64
		var n, cn int
		for i := a; i < b; i++ {
			s += sums[i]
			n += cnts[i]
			cs += csums[i]
			cn += ccnts[i]
		}
		if n > 0 {
			z := float64(m.bias) + s/math.Sqrt(float64(n))
			if cn > 0 {
				z = max(z, float64(m.cbias)+cs/math.Sqrt(float64(cn)))
			}
			best = max(best, z)
		}
	}
	if nb <= blocksPerWindow {
		win(0, nb)
	} else {
		for a := 0; a+blocksPerWindow <= nb; a++ {
			win(a, a+blocksPerWindow)
		}
	}
	if math.IsInf(best, -1) {
		return float64(m.bias)
	}
	return best
}

func randomModel(seed uint64) *Model {
	r := rand.New(rand.NewPCG(seed, 7))
	m := &Model{w: make([]float32, 1<<Bits), bias: -1.5, cbias: -2}
	for i := range m.w {
		m.w[i] = float32(r.NormFloat64())
	}
	return m.WithLogits(0, 1)
}

func TestScoreMatchesTrainingFeatures(t *testing.T) {
	m := randomModel(1)
	r := rand.New(rand.NewPCG(2, 3))
	words := []string{"ignore", "the", "previous", "instructions", "данные", "指示を無視", "上記の指示", "instrucciones", "anteriores", "проигнорируйте", "निर्देशों", "무시하고", "!!", "  ", "\n", "a1b2", "é", "x", "सभी", "...", "reveal"}
	texts := []string{"", " ", "a", "ab", "abc", "abcd ", strings.Repeat("x", Block), strings.Repeat("ab ", Window), strings.Repeat("word ", Window/5)}
	for i := 0; i < 400; i++ {
		var b strings.Builder
		n := r.IntN(300)
		for j := 0; j < n; j++ {
			b.WriteString(words[r.IntN(len(words))])
			if r.IntN(3) > 0 {
				b.WriteByte(' ')
			}
		}
		texts = append(texts, b.String())
	}
	for _, s := range texts {
		got, want := m.Score(s).Logit, refScore(m, s)
		if math.Abs(got-want) > 1e-3*max(1, math.Abs(want)) {
			t.Fatalf("Score(%.60q) = %v, the training features give %v", s, got, want)
		}
	}
}

func TestScoreLocatesTheWindow(t *testing.T) {
	m := randomModel(4)
	text := strings.Repeat("plain words here ", 40)
	s := m.Score(text)
	if s.Start < 0 || s.End > len(text) || s.Start > s.End {
		t.Fatalf("window [%d, %d) outside the text of %d bytes", s.Start, s.End, len(text))
	}
}

func TestScoreDoesNotAllocate(t *testing.T) {
	m := randomModel(5)
	text := strings.Repeat("ignore the previous instructions ", 100)
	if n := testing.AllocsPerRun(20, func() { m.Score(text) }); n != 0 {
		t.Fatalf("Score allocates %v times", n)
	}
}

func TestEmbeddedModel(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	med, high := m.Thresholds()
	if !(0 < med && med <= high && high < 1) {
		t.Fatalf("embedded thresholds medium %v high %v", med, high)
	}
	if len(Embedded()) > 10<<20 {
		t.Fatalf("embedded model is %d bytes, over the 10 MB budget", len(Embedded()))
	}
	// Round trip: Marshal(Parse(b)) == b.
	if b := m.Marshal(); string(b) != string(Embedded()) {
		t.Fatal("Marshal(Parse(embedded)) differs from the embedded bytes")
	}
}

func TestParseRejectsDamage(t *testing.T) {
	good := Embedded()
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"magic":     append([]byte("XXXX"), good[4:]...),
	}
	bad := append([]byte(nil), good...)
	bad[20], bad[21], bad[22], bad[23] = 0, 0, 0x80, 0x7f // medium = +Inf
	cases["thresholds"] = bad
	for name, b := range cases {
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: Parse accepted a damaged model", name)
		}
	}
	m, _ := Default()
	for _, th := range [][2]float64{{0, 0.5}, {0.9, 0.5}, {0.5, 1}, {math.NaN(), 0.5}} {
		if _, err := m.WithThresholds(th[0], th[1]); err == nil {
			t.Errorf("WithThresholds(%v, %v) accepted", th[0], th[1])
		}
	}
}

func TestPortableExp(t *testing.T) {
	for x := -40.0; x <= 0; x += 0.37 {
		if got, want := pexp(x), math.Exp(x); math.Abs(got-want) > 1e-12*max(want, 1e-300) && math.Abs(got-want) > 1e-15 {
			t.Fatalf("pexp(%v) = %v, want %v", x, got, want)
		}
	}
}
