package inspect

import (
	"strings"

	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// KindModel is a prompt-injection finding of the learned classifier: its Score is the model's
// probability, its severity the level the calibrated thresholds give that probability.
const KindModel = "prompt_injection.model"

// ModelConfig configures the learned prompt-injection classifier.
type ModelConfig struct {
	// Disabled turns the classifier off (the rules still run).
	Disabled bool
	// Medium and High override the model's calibrated probability thresholds (0: keep the
	// model's own). Raising them trades recall for fewer false alarms.
	Medium, High float64
	// Model replaces the embedded model (evaluation trains its own); nil means the embedded one.
	Model *classifier.Model
}

// minModelText and minModelWords bound what the classifier scores: shorter values (ids, names,
// a tool's two-word description) carry too few features for a judgement, and the rules judge
// short phrases better.
const (
	minModelText  = 16
	minModelWords = 3
)

// modelDetector scores every string value, and every decoded reading of it, with the classifier.
type modelDetector struct {
	m *classifier.Model
}

func (modelDetector) Name() string { return "model" }

// newModelDetector returns the classifier detector cfg asks for, or nil when it is off. An
// embedded model that does not load, or thresholds out of range (outside (0, 1), or medium above
// high when both are given), panic: tests and configuration validation catch both before a
// gateway starts.
func newModelDetector(cfg ModelConfig) Detector {
	if cfg.Disabled {
		return nil
	}
	m := cfg.Model
	if m == nil {
		var err error
		if m, err = classifier.Default(); err != nil {
			panic(err)
		}
	}
	if cfg.Medium > 0 || cfg.High > 0 {
		med, high := m.Thresholds()
		if cfg.Medium > 0 {
			med = cfg.Medium
			if cfg.High <= 0 {
				high = max(high, med) // one threshold set: the other follows it if it must
			}
		}
		if cfg.High > 0 {
			high = cfg.High
			if cfg.Medium <= 0 {
				med = min(med, high)
			}
		}
		var err error
		if m, err = m.WithThresholds(med, high); err != nil {
			panic(err)
		}
	}
	return modelDetector{m: m}
}

func (d modelDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	best, text := classifier.Score{}, ""
	found := false
	consider := func(t string) {
		if len(t) < minModelText || strings.Count(t, " ") < minModelWords-1 && !spaceless(t) {
			return
		}
		s := d.m.Score(t)
		if !found || s.Logit > best.Logit {
			best, text, found = s, t, true
		}
	}
	consider(v.Norm)
	for _, l := range v.Decoded {
		consider(l)
	}
	if !found {
		return
	}
	var sev threat.Level
	switch d.m.Level(best) {
	case classifier.High:
		sev = threat.High
	case classifier.Medium:
		sev = threat.Medium
	default:
		return
	}
	if sev == threat.High && classifier.PersonaOpening(text) {
		// A role for the reader and nothing else an attack needs: a user's persona set-up
		// ("act as a travel guide, answer only with …") scores like a jailbreak without being
		// one. Medium still tells a policy, and a second family's medium still raises it. Only
		// a text that opens with the set-up, as the rules judge it (injection.go): a document
		// that mentions a role somewhere does not excuse an instruction planted in it.
		sev = threat.Medium
	}
	quoted := false
	if sev == threat.High {
		// The window's middle inside a quotation that the text around discusses as an attack:
		// a question about an injection, not one (as the rules judge it; see quotedDiscussion).
		mid := (best.Start + best.End) / 2
		if o, c := quoteAround(text, mid, mid); o >= 0 && (discussionWords.contains(text[:o]) || discussionWords.contains(text[c:])) {
			sev, quoted = threat.Medium, true
		}
	}
	report(Finding{Kind: KindModel, Severity: sev, Path: v.Path, Evidence: evidence(text, best.Start, best.End), Score: roundScore(best.Prob()), Quoted: quoted})
}

// spaceless reports whether t is long enough to judge although it has no spaces between words:
// Chinese and Japanese are written without them, and a sentence of theirs is one "word" by spaces.
// At least minSpacelessText bytes, most of the first 64 outside ASCII.
func spaceless(t string) bool {
	if len(t) < minSpacelessText {
		return false
	}
	n, high := min(len(t), 64), 0
	for i := 0; i < n; i++ {
		if t[i] >= 0x80 {
			high++
		}
	}
	return 2*high >= n
}

// minSpacelessText is ten CJK characters.
const minSpacelessText = 30

// roundScore keeps three decimals: enough to compare with a threshold, stable in output.
func roundScore(p float64) float64 {
	return float64(int64(p*1000+0.5)) / 1000
}
