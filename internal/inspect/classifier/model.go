package classifier

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// The model file: a header and the weights, little-endian.
//
//	magic "PCPI" | version u32 | bits u32 | window u32 | bias f32 | medium f32 | high f32 | concept bias f32 | 2^bits × f32
//
// medium and high are the thresholds as logits. Version 2 added the concept channel's bias.
const (
	magic      = "PCPI"
	version    = 2
	headerSize = 4 + 4 + 4 + 4 + 4 + 4 + 4 + 4
)

//go:embed model.bin
var embedded []byte

// Model is a trained classifier with its calibrated thresholds. It is immutable and safe for
// concurrent use.
type Model struct {
	w    []float32
	bias float32
	// cbias is the concept channel's bias (see Score).
	cbias float32
	// medium and high are probability thresholds; mediumZ and highZ the same as logits.
	medium, high   float64
	mediumZ, highZ float64
}

var (
	defaultOnce  sync.Once
	defaultModel *Model
	defaultErr   error
)

// Default returns the embedded model.
func Default() (*Model, error) {
	defaultOnce.Do(func() { defaultModel, defaultErr = Parse(embedded) })
	return defaultModel, defaultErr
}

// Embedded returns the bytes of the embedded model file.
func Embedded() []byte { return embedded }

// Parse reads a model file.
func Parse(b []byte) (*Model, error) {
	if len(b) < headerSize || string(b[:4]) != magic {
		return nil, errors.New("classifier: not a model file")
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[4:]); v != version {
		return nil, fmt.Errorf("classifier: model version %d, want %d", v, version)
	}
	if bits := le.Uint32(b[8:]); bits != Bits {
		return nil, fmt.Errorf("classifier: model has 2^%d features, want 2^%d", bits, Bits)
	}
	if win := le.Uint32(b[12:]); win != Window {
		return nil, fmt.Errorf("classifier: model window %d, want %d", win, Window)
	}
	if len(b) != headerSize+4<<Bits {
		return nil, fmt.Errorf("classifier: model file of %d bytes, want %d", len(b), headerSize+4<<Bits)
	}
	m := &Model{bias: math.Float32frombits(le.Uint32(b[16:])), cbias: math.Float32frombits(le.Uint32(b[28:])), w: make([]float32, 1<<Bits)}
	for i := range m.w {
		m.w[i] = math.Float32frombits(le.Uint32(b[headerSize+4*i:]))
	}
	zm, zh := float64(math.Float32frombits(le.Uint32(b[20:]))), float64(math.Float32frombits(le.Uint32(b[24:])))
	if !(zm <= zh) || math.IsInf(zm, 0) || math.IsInf(zh, 0) {
		return nil, fmt.Errorf("classifier: model thresholds %v, %v are not ordered", zm, zh)
	}
	m.setLogits(zm, zh)
	return m, nil
}

// Marshal encodes m as a model file.
func (m *Model) Marshal() []byte {
	b := make([]byte, headerSize+4<<Bits)
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint32(b[4:], version)
	le.PutUint32(b[8:], Bits)
	le.PutUint32(b[12:], Window)
	le.PutUint32(b[16:], math.Float32bits(m.bias))
	le.PutUint32(b[20:], math.Float32bits(float32(m.mediumZ)))
	le.PutUint32(b[24:], math.Float32bits(float32(m.highZ)))
	le.PutUint32(b[28:], math.Float32bits(m.cbias))
	for i, w := range m.w {
		le.PutUint32(b[headerSize+4*i:], math.Float32bits(w))
	}
	return b
}

// WithThresholds returns m with other probability thresholds (sharing the weights). A threshold
// must lie in (0, 1) and medium must not exceed high.
func (m *Model) WithThresholds(medium, high float64) (*Model, error) {
	if !(medium > 0 && medium < 1 && high > 0 && high < 1) || medium > high {
		return nil, fmt.Errorf("classifier: thresholds medium %v and high %v must lie in (0, 1) with medium ≤ high", medium, high)
	}
	c := *m
	c.setLogits(logit(medium), logit(high))
	return &c, nil
}

// WithLogits is WithThresholds with the thresholds given as logits (medium ≤ high). The model
// file stores them as float32: each is rounded up, never to the nearest, because a calibrated
// threshold lies just above the benign row that decides it (ChooseThresholdsFor), and rounding
// down could land below that row and let it pass.
func (m *Model) WithLogits(medium, high float64) *Model {
	c := *m
	c.setLogits(ceil32(medium), ceil32(high))
	return &c
}

// ceil32 is the least float32 at or above z, as a float64.
func ceil32(z float64) float64 {
	f := float32(z)
	if float64(f) < z {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return float64(f)
}

func (m *Model) setLogits(zm, zh float64) {
	m.mediumZ, m.highZ = zm, zh
	m.medium, m.high = 1/(1+math.Exp(-zm)), 1/(1+math.Exp(-zh))
}

// Thresholds returns the probability thresholds for medium and high.
func (m *Model) Thresholds() (medium, high float64) { return m.medium, m.high }

// Logits returns the thresholds for medium and high as logits.
func (m *Model) Logits() (medium, high float64) { return m.mediumZ, m.highZ }

func logit(p float64) float64 { return math.Log(p / (1 - p)) }

// Level is what a score means under the model's thresholds.
type Level uint8

const (
	// Below: under the medium threshold.
	Below Level = iota
	// Medium: at or above the medium threshold.
	Medium
	// High: at or above the high threshold.
	High
)

// Score is the model's judgement of one text: the logit of its most suspicious window and where
// that window lies in the text (byte offsets).
type Score struct {
	Logit      float64
	Start, End int
}

// Prob is the score as a probability.
func (s Score) Prob() float64 { return 1 / (1 + math.Exp(-s.Logit)) }

// Level maps a score to a level under m's thresholds.
func (m *Model) Level(s Score) Level {
	switch {
	case s.Logit >= m.highZ:
		return High
	case s.Logit >= m.mediumZ:
		return Medium
	}
	return Below
}

// maxRun is how deep into a run of one repeated stream byte Score still counts n-grams. block
// tells such a run by the last eight stream bytes not changing at a byte (see there): the
// constant is the featurizer's definition.
const maxRun = 8

// windows is Score's ring of the last blocksPerWindow closed blocks and the best window so far.
// It lives apart from the per-byte state: a closure over that state would keep it in memory
// rather than in registers, and the per-byte loop is the classifier's whole cost.
type windows struct {
	sum, csum  [blocksPerWindow]float32
	cnt, start [blocksPerWindow]int32
	ccnt       [blocksPerWindow]int32
	blocks     int   // closed blocks
	blkStart   int32 // where the current block starts
	bias       float64
	cbias      float64
	best       Score
}

// close records the current block, with feature sum acc over cnt features (and the concept
// channel's) and ending at byte end, and scores the window it completes.
func (r *windows) close(st *stream, end int) {
	slot := r.blocks % blocksPerWindow
	r.sum[slot], r.cnt[slot], r.start[slot] = st.acc, st.cnt, r.blkStart
	r.csum[slot], r.ccnt[slot] = st.cacc, st.ccnt
	r.blkStart = int32(end)
	r.blocks++
	if r.blocks >= blocksPerWindow {
		r.score(end)
	}
}

// score's unrolled sums are for a ring of eight blocks: this fails to compile for another.
var _ = [1]struct{}{}[blocksPerWindow-8]

// score scores the window of the blocks in the ring, ending at byte end.
func (r *windows) score(end int) {
	// The loop over the ring, unrolled (it runs at every block): the sums keep the loop's order,
	// from zero, slot by slot, so the float32 results are the same to the bit.
	var s, cs float32
	s += r.sum[0]
	s += r.sum[1]
	s += r.sum[2]
	s += r.sum[3]
	s += r.sum[4]
	s += r.sum[5]
	s += r.sum[6]
	s += r.sum[7]
	n := r.cnt[0] + r.cnt[1] + r.cnt[2] + r.cnt[3] + r.cnt[4] + r.cnt[5] + r.cnt[6] + r.cnt[7]
	if n == 0 {
		return
	}
	cn := r.ccnt[0] + r.ccnt[1] + r.ccnt[2] + r.ccnt[3] + r.ccnt[4] + r.ccnt[5] + r.ccnt[6] + r.ccnt[7]
	if cn > 0 {
		cs += r.csum[0]
		cs += r.csum[1]
		cs += r.csum[2]
		cs += r.csum[3]
		cs += r.csum[4]
		cs += r.csum[5]
		cs += r.csum[6]
		cs += r.csum[7]
	}
	z := r.bias + float64(s)/math.Sqrt(float64(n))
	if cn > 0 {
		z = max(z, r.cbias+float64(cs)/math.Sqrt(float64(cn)))
	}
	if z > r.best.Logit {
		start := int32(0)
		if r.blocks >= blocksPerWindow {
			start = r.start[r.blocks%blocksPerWindow]
		}
		r.best = Score{Logit: z, Start: int(start), End: end}
	}
}

// Score scores every window of whole blocks (Window stream bytes, at every Block) of text — the
// whole text when it is shorter — and returns the most suspicious one. text should be normalised
// the way the inspection engine normalises values (Value.Norm). It does not allocate.
//
// It computes the features of AppendFeatures inline (one pass, no buffer); a test holds the two
// to the same scores.
func (m *Model) Score(text string) Score {
	r := windows{bias: float64(m.bias), cbias: float64(m.cbias), best: Score{Logit: math.Inf(-1)}}
	var st stream
	for i := 0; i < len(text); {
		var closed bool
		if st.pos < ngramStart {
			i, closed = st.blockStart(m.w, text, i)
		} else {
			i, closed = st.block(m.w, text, i)
		}
		if st.pend {
			st.pending(m.w) // before a block closes: the features belong to it
		}
		if closed {
			r.close(&st, i)
			st.acc, st.cnt, st.cacc, st.ccnt = 0, 0, 0, 0
		}
	}
	return st.finish(m.w, &r, len(text))
}

// finish adds the features of a word the text ends in, closes the last, partial block (the last
// window; a text shorter than a window is one) and returns the best window of a text of n bytes.
func (st *stream) finish(w []float32, r *windows, n int) Score {
	if st.inWord() {
		st.acc += w[bucket(st.word, seedWord)] + w[bucket(st.prev*mulHash^st.word, seedPair)]
		st.cnt += 2
		if k := wordConcept(st.word, st.stem, st.pos > st.stemEnd); k != 0 {
			st.concept(w, k, int32(st.pos))
		}
	}
	if st.cnt > 0 || st.ccnt > 0 || r.blocks < blocksPerWindow {
		slot := r.blocks % blocksPerWindow
		r.sum[slot], r.cnt[slot], r.start[slot] = st.acc, st.cnt, r.blkStart
		r.csum[slot], r.ccnt[slot] = st.cacc, st.ccnt
		if r.blocks >= blocksPerWindow {
			r.blocks++
		}
		r.score(n)
	}
	if r.best.Logit == math.Inf(-1) {
		return Score{Logit: r.bias, End: n}
	}
	return r.best
}

// stream is Score's per-byte state between blocks.
type stream struct {
	acc  float32 // the current block's feature sum
	cnt  int32   // and its feature count
	h    uint64  // the last 8 stream bytes
	word uint64  // hash of the current word
	prev uint64  // hash of the previous word (0 at the start)
	pos  int     // stream bytes so far
	// stemEnd is the stream position where the current word's stem ends; stem is the hash of the
	// word up to there.
	stemEnd int
	stem    uint64
	// A concept lookup block left to its caller: the word's hash (or a CJK pair's key), its stem
	// and whether the word is longer than the stem, and the stream position.
	pend, plong, pcjk bool
	pword, pstem      uint64
	ppos              int32
	cacc              float32 // the current block's concept feature sum
	ccnt              int32   // and their count
	con               conceptState
}

// inWord reports whether the last stream byte was no separator. The last byte of h is a
// separator, or 0 before the first stream byte: the only two bytes the mask below takes to
// sepByte (a stream byte is a lower-case letter, '0' or a byte of 0x80 and above).
func (st *stream) inWord() bool { return inWordByte(st.h) }

func inWordByte(h uint64) bool { return byte(h)|sepByte != sepByte }

// ngramStart is the stream position from which every stream byte completes a 3-gram and a
// 5-gram; blockStart takes the stream there, block takes it on.
const ngramStart = 5

// blockStart is block for the first ngramStart stream bytes, where an n-gram needs as many
// bytes before it: it stops at the stream byte that completes the first 5-gram.
func (st *stream) blockStart(w []float32, text string, i int) (int, bool) {
	w = w[:1<<Bits]
	acc, cnt, h, word, prev, pos := st.acc, st.cnt, st.h, st.word, st.prev, st.pos
	stemEnd, stem := st.stemEnd, st.stem
	end := len(text)
	st.pend = false
	for j := i; j < len(text); j++ {
		c := streamByte[text[j]]
		if c == 0 {
			if !inWordByte(h) {
				continue // the stream's start, or a run of separators: one separator at most
			}
			acc += w[bucket(word, seedWord)] + w[bucket(prev*mulHash^word, seedPair)]
			cnt += 2
			if concepts.mayHave(word) || pos > stemEnd && concepts.mayHave(stem^stemSalt) {
				st.pend, st.pword, st.pstem, st.plong, st.ppos = true, word, stem, pos > stemEnd, int32(pos)
			}
			prev = word
			h = h<<8 | sepByte
		} else {
			if !inWordByte(h) {
				word = fnvOffset
				stemEnd = pos + stemLen(c)
			}
			word = (word ^ uint64(c)) * fnvPrime
			if pos+1 == stemEnd {
				stem = word
			}
			h = h<<8 | uint64(c)
			if c >= 0x80 && isCJKPair(h) && concepts.mayHave(h&mask6^cjkSalt) {
				st.pend, st.pword, st.plong, st.ppos, st.pcjk = true, h&mask6^cjkSalt, false, int32(pos), true
			}
		}
		// No run of one byte is maxRun long yet (see block).
		pos++
		if pos >= 5 {
			acc += w[bucket(h&mask3, seed3)] + w[bucket(h&mask5, seed5)]
			cnt += 2
		} else if pos >= 3 {
			acc += w[bucket(h&mask3, seed3)]
			cnt++
		}
		if st.pend || pos == ngramStart {
			// Block is no multiple of ngramStart: no block closes here.
			end = j + 1
			break
		}
	}
	st.acc, st.cnt, st.h, st.word, st.prev, st.pos = acc, cnt, h, word, prev, pos
	st.stemEnd, st.stem = stemEnd, stem
	return end, false
}

// block advances st over text from byte i until the stream completes a block or text ends, and
// returns where it stopped and whether a block is complete. It needs st.pos ≥ ngramStart
// (blockStart). The loop works on local copies and calls nothing, so that its state stays in
// registers: it is the classifier's whole cost. Its state is kept small for the same reason:
// whether the stream is inside a word is the last byte of h (inWordByte), and the depth of a
// run of one byte is not counted: the run is maxRun deep exactly when a byte leaves the last
// eight stream bytes unchanged (nine equal bytes; separators never repeat).
func (st *stream) block(w []float32, text string, i int) (int, bool) {
	w = w[:1<<Bits]
	acc, cnt, h, word, pos := st.acc, st.cnt, st.h, st.word, st.pos
	stemEnd := st.stemEnd
	st.pend = false
	for j := i; uint(j) < uint(len(text)); j++ { // (uint: the one comparison is also the bounds check)
		c := streamByte[text[j]]
		if c == 0 {
			if !inWordByte(h) {
				continue // a run of separators: one separator at most
			}
			prev := st.prev
			acc += w[bucket(word, seedWord)] + w[bucket(prev*mulHash^word, seedPair)]
			st.prev = word
			h = h<<8 | sepByte
			acc += w[bucket(h&mask3, seed3)] + w[bucket(h&mask5, seed5)]
			cnt += 4
			pos++
			if concepts.mayHave(word) || pos > stemEnd+1 && concepts.mayHave(st.stem^stemSalt) {
				// A word the concept lexicon may hold: looked up outside this loop (see pend).
				st.pend, st.pword, st.pstem, st.plong, st.ppos = true, word, st.stem, pos > stemEnd+1, int32(pos-1)
			}
			if pos%Block == 0 || st.pend {
				st.acc, st.cnt, st.h, st.word, st.pos, st.stemEnd = acc, cnt, h, word, pos, stemEnd
				return j + 1, pos%Block == 0
			}
			continue
		}
		if !inWordByte(h) {
			word = fnvOffset
			stemEnd = pos + stemLen(c)
		}
		word = (word ^ uint64(c)) * fnvPrime
		pos++
		if pos == stemEnd {
			st.stem = word
		}
		if hn := h<<8 | uint64(c); hn != h {
			h = hn
			acc += w[bucket(h&mask3, seed3)] + w[bucket(h&mask5, seed5)]
			cnt += 2
		}
		if c >= 0x80 && isCJKPair(h) && concepts.mayHave(h&mask6^cjkSalt) {
			st.pend, st.pword, st.plong, st.ppos, st.pcjk = true, h&mask6^cjkSalt, false, int32(pos-1), true
			st.acc, st.cnt, st.h, st.word, st.pos, st.stemEnd = acc, cnt, h, word, pos, stemEnd
			return j + 1, pos%Block == 0
		}
		if pos%Block == 0 {
			st.acc, st.cnt, st.h, st.word, st.pos, st.stemEnd = acc, cnt, h, word, pos, stemEnd
			return j + 1, true
		}
	}
	st.acc, st.cnt, st.h, st.word, st.pos, st.stemEnd = acc, cnt, h, word, pos, stemEnd
	return len(text), false
}

// pending looks up the word (or CJK pair) block stopped at and adds its concept's features.
// The lookup lives outside block's loop, so that the loop calls nothing (its state stays in
// registers) and pays for concepts only at the few words the lexicon's filter admits.
func (st *stream) pending(w []float32) {
	st.pend = false
	var k uint8
	if st.pcjk {
		st.pcjk = false
		k = concepts.get(st.pword)
	} else {
		k = wordConcept(st.pword, st.pstem, st.plong)
	}
	if k != 0 {
		st.concept(w, k, st.ppos)
	}
}

// concept adds the features of concept k seen at stream position pos to the block's concept
// channel. It is the per-byte loop's slow path, taken at a word of the concept lexicon (and a few
// others its filter admits).
//
//go:noinline
func (st *stream) concept(w []float32, k uint8, pos int32) {
	var out [maxConceptFeatures]uint32
	n := st.con.emit(k, pos, &out)
	for _, b := range out[:n] {
		st.cacc += w[b]
	}
	st.ccnt += int32(n)
}
