// Package classifier is the learned prompt-injection classifier: hashed byte n-grams and word
// n-grams of the normalised text, scored by a logistic model over sliding windows. It is pure Go,
// its weights are embedded in the binary (model.bin, built by `go run ./internal/inspect/train`),
// and scoring is one pass over the text with one table look-up per feature.
//
// The features carry across scripts: byte n-grams see Devanagari, Cyrillic or CJK the way they
// see Latin letters, so no per-language rule is needed for the model to learn a phrasing.
package classifier

// Feature extraction. The text (already normalised by the inspection engine: NFKC, lower case,
// hidden characters removed) becomes a stream of bytes: ASCII letters kept, ASCII digits mapped to
// '0', every other ASCII byte (punctuation, white space, controls) a single separator, and bytes
// of non-ASCII characters kept as they are. At each byte of the stream the n-grams of the last
// 3 and 5 bytes are features; at the end of each word (a run of non-separator bytes), the word
// and the pair (previous word, word) are features. Deep inside a run of one repeated byte (past
// maxRun: "aaaa…", a long number) no n-gram is a feature: the run would repeat one feature, which
// the normalisation by √features multiplies without bound. A feature is a bucket of a 2^Bits table.
const (
	// Bits is the size of the hashed feature table: 2^Bits weights.
	Bits = 18
	// Block is the granularity of windows in stream bytes: a window is a run of whole blocks.
	Block = 16
	// Window is the length of a scoring window in stream bytes (about 20 English words).
	Window = 128
	// Stride is the step between training windows; scoring looks at a window every Block.
	Stride          = Window / 2
	blocksPerWindow = Window / Block
	strideBlocks    = Stride / Block
)

const (
	sepByte  = ' '
	seed3    = 0x51ed27f0a2c4d1e3
	seed5    = 0x8c3b6a1f7d2e9b45
	seedWord = 0x2d358dccaa6c78a5
	seedPair = 0x9fb21c651e98df25
	// Concept features (concepts.go).
	seedConcept       = 0x3c6ef372fe94f82b
	seedConceptPair   = 0xa54ff53a5f1d36f1
	seedConceptTriple = 0x510e527fade682d1
	mulHash           = 0x9e3779b97f4a7c15
	fnvOffset         = 0xcbf29ce484222325
	fnvPrime          = 0x100000001b3
	mask3             = 1<<24 - 1
	mask5             = 1<<40 - 1
)

// streamByte maps a byte of the normalised text to the stream: 0 for a separator.
var streamByte = func() (t [256]byte) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z':
			t[c] = byte(c)
		case c >= 'A' && c <= 'Z':
			t[c] = byte(c) | 0x20
		case c >= '0' && c <= '9':
			t[c] = '0'
		case c >= 0x80:
			t[c] = byte(c)
		}
	}
	return t
}()

func bucket(x, seed uint64) uint32 {
	return uint32(((x ^ seed) * mulHash) >> (64 - Bits))
}

// Feature is one feature occurrence: its bucket and the stream position it belongs to, with Src
// the byte offset in the text just past the byte that completed it. A concept feature has
// ConceptBit set in Index (its bucket is Index &^ ConceptBit): it is summed in a channel of its
// own (see Model.Score).
type Feature struct {
	Index uint32
	Pos   int32
	Src   int32
}

// featurizer walks a text and emits its features in stream order, a batch at a time, so that
// training and scoring share one definition of the features.
type featurizer struct {
	s       string
	i       int    // next byte of s
	pos     int32  // stream bytes emitted so far
	h       uint64 // the last 8 stream bytes
	run     int    // stream bytes since the start (n-grams need n of them)
	word    uint64 // hash of the current word
	inWord  bool
	prev    uint64 // hash of the previous word (0 at the start)
	lastSep bool
	done    bool
	same    int // how many times in a row the last byte repeated the one before
	wl      int // stream bytes of the current word
	stemAt  int // its stem length (stemLen)
	stem    uint64
	con     conceptState
}

func newFeaturizer(s string) featurizer {
	return featurizer{s: s, lastSep: true}
}

// next fills buf with the next features and returns how many; 0 means the text is done.
// buf must hold at least maxPerByte features.
func (f *featurizer) next(buf []Feature) int {
	n := 0
	for n+maxPerByte <= len(buf) {
		if f.i >= len(f.s) {
			if f.done {
				return n
			}
			f.done = true
			if f.inWord {
				n = f.endWord(buf, n, int32(len(f.s)))
			}
			return n
		}
		c := streamByte[f.s[f.i]]
		f.i++
		if c == 0 {
			if f.lastSep {
				continue
			}
			c = sepByte
			f.lastSep = true
			if f.inWord {
				n = f.endWord(buf, n, int32(f.i))
			}
		} else {
			f.lastSep = false
			if !f.inWord {
				f.inWord = true
				f.word = fnvOffset
				f.wl, f.stemAt = 0, stemLen(c)
			}
			f.word = (f.word ^ uint64(c)) * fnvPrime
			f.wl++
			if f.wl == f.stemAt {
				f.stem = f.word
			}
		}
		if byte(f.h) == c && c != sepByte {
			f.same++
		} else {
			f.same = 0
		}
		f.h = f.h<<8 | uint64(c)
		f.run++
		src := int32(f.i)
		if c >= 0x80 && isCJKPair(f.h) {
			if k := concepts.get(f.h&mask6 ^ cjkSalt); k != 0 {
				n = f.concept(buf, n, k, src)
			}
		}
		if f.same >= maxRun {
			// Deep inside a run of one byte: no n-gram (see maxRun).
		} else if f.run >= 3 {
			buf[n] = Feature{bucket(f.h&mask3, seed3), f.pos, src}
			n++
		}
		if f.run >= 5 && f.same < maxRun {
			buf[n] = Feature{bucket(f.h&mask5, seed5), f.pos, src}
			n++
		}
		f.pos++
	}
	return n
}

func (f *featurizer) endWord(buf []Feature, n int, src int32) int {
	f.inWord = false
	buf[n] = Feature{bucket(f.word, seedWord), f.pos, src}
	buf[n+1] = Feature{bucket(f.prev*mulHash^f.word, seedPair), f.pos, src}
	f.prev = f.word
	n += 2
	if k := wordConcept(f.word, f.stem, f.wl > f.stemAt); k != 0 {
		n = f.concept(buf, n, k, src)
	}
	return n
}

// concept appends the features of concept k at the current stream position.
func (f *featurizer) concept(buf []Feature, n int, k uint8, src int32) int {
	var out [maxConceptFeatures]uint32
	for _, b := range out[:f.con.emit(k, f.pos, &out)] {
		buf[n] = Feature{b | ConceptBit, f.pos, src}
		n++
	}
	return n
}

// ConceptBit marks a concept feature's Index.
const ConceptBit = 1 << 31

// maxPerByte bounds the features one stream byte can complete: two n-grams, a word and its pair,
// and the concept features of the word and of a CJK pair.
const maxPerByte = 2 + 2 + 2*maxConceptFeatures

// AppendFeatures appends every feature of s to dst.
func AppendFeatures(dst []Feature, s string) []Feature {
	f := newFeaturizer(s)
	var buf [256]Feature
	for {
		n := f.next(buf[:])
		if n == 0 {
			return dst
		}
		dst = append(dst, buf[:n]...)
	}
}
