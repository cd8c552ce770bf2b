package classifier

import "strings"

// A persona set-up — "I want you to act as a travel guide; answer only with …" — reads, word for
// word, much like a jailbreak: a role for the reader, orders about its answers, "do not write
// explanations". What makes a jailbreak of it is a second part: an override of the instructions
// the reader already has, a persona without limits, a rule or filter to drop, a harmful goal, the
// system prompt or a secret to give away, a bribe. Prompt collections full of benign set-ups
// that the model never trained on score as attacks (11% of one such collection at high, with it
// held out of training); PersonaSetUp lets the inspector keep such a score below high.

// PersonaSetUp reports whether text names a role for the reader (act, pretend, role-play,
// persona, character, in any language of the concept lexicon) and holds no attack part: no
// override verb with instructions, "previous" or "all"; nothing unrestricted, no ethics, policy
// or filter; no harm; no system or hidden instructions, nor any to reveal; no bribe; no secret to
// reveal; none of the words by which a persona is told to drop its guard (jailbreakCues). It
// reads the whole text: an attack part anywhere in it keeps the persona suspect.
func PersonaSetUp(text string) bool { return personaSetUp(text, len(text)) }

// PersonaOpening is PersonaSetUp for a text that opens with the set-up: the role is named in its
// first openingBytes bytes. A long document that mentions a character or a role somewhere is not
// a persona set-up, and a planted instruction in it is not excused by the mention.
func PersonaOpening(text string) bool { return personaSetUp(text, openingBytes) }

// openingBytes is about the first two sentences of a set-up ("I want you to act as …").
const openingBytes = 160

func personaSetUp(text string, roleWithin int) bool {
	var seen uint64
	roleSeen := false
	has := func(c uint8) bool { return seen&(1<<c) != 0 }
	start := -1
	cue := false
	flush := func(end int) {
		if start >= 0 {
			w := text[start:end]
			sl := stemLen(streamByte[w[0]])
			c := wordConcept(wordHash(w, 0), wordHash(w, sl), len(w) > sl)
			seen |= 1 << c
			roleSeen = roleSeen || c == cRole && start < roleWithin
			cue = cue || jailbreakCues[w]
			start = -1
		}
	}
	var h uint64
	for i := 0; i < len(text); i++ {
		c := streamByte[text[i]]
		if c == 0 {
			flush(i)
			h = 0
			continue
		}
		if start < 0 {
			start = i
		}
		h = h<<8 | uint64(c)
		if c >= 0x80 && isCJKPair(h) {
			k := concepts.get(h&mask6 ^ cjkSalt)
			seen |= 1 << k
			roleSeen = roleSeen || k == cRole && i < roleWithin
		}
	}
	flush(len(text))
	if !roleSeen {
		return false
	}
	attack := cue || has(cOverride) && (has(cInstr) || has(cPrior) || has(cAll)) ||
		has(cUnbound) || has(cPolicy) || has(cHarm) || has(cReward) ||
		has(cSystem) && (has(cInstr) || has(cReveal)) ||
		has(cSecret) && has(cReveal)
	return !attack
}

// jailbreakCues are words a persona jailbreak uses to take the model's guard down — its filters,
// refusals, disclaimers, what it must not say — and a benign persona has no reason to mention.
// They are not concepts of the classifier (which would change its features); the persona check
// alone reads them, in the lower case of the normalised text.
var jailbreakCues = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`filter filters filtered filtering unfiltered censor censors censored
		censoring refuse refuses refused refusing refusal refusals disclaimer disclaimers moralizing
		moralising profanity profane nsfw explicit offensive immoral opposite obscene vulgar swear
		swearing`) {
		m[w] = true
	}
	return m
}()
