package policy

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Number is a number literal of the policy language (max_value, min_value, equals, one_of), kept
// exactly as written. Comparisons against it never round: a tool reads 9007199254740993 as
// that integer, so a limit of 9007199254740992 must refuse it, which a float64 comparison does
// not (both sides round to 2^53).
//
// The exact value is a decimal (sign, significant digits, exponent). Beside it the literal keeps
// lo, the greatest float64 not above it, so a float64 parameter is compared with one float
// comparison and no rounding: when the literal is exactly lo, x compares as against lo; when it
// is not, no float64 lies between lo and the literal, so x ≤ lo means x is below it and x > lo
// means x is above it.
type Number struct {
	dec   decimal
	lo    float64
	exact bool // the literal is exactly lo
}

// decimal is sign × 0.digits × 10^exp with no leading or trailing zeros in digits; zero has no
// digits.
type decimal struct {
	neg    bool
	digits string
	exp    int64
}

// ErrNumber is returned by ParseNumber for text that is not a decimal number.
var ErrNumber = errors.New("not a decimal number")

// ParseNumber reads a decimal number: an optional sign, digits with at most one decimal point
// (".5" and "5." are accepted), and an optional exponent. Any size and precision is kept exactly.
func ParseNumber(s string) (Number, error) {
	v, ok := scanNumber(s, true)
	if !ok {
		return Number{}, ErrNumber
	}
	var b strings.Builder
	for i := 0; i < v.n; i++ {
		b.WriteByte(v.digit(i))
	}
	n := Number{dec: decimal{neg: v.neg && v.n > 0, digits: b.String(), exp: v.exp}}
	n.lo, n.exact = n.dec.floor()
	return n, nil
}

// String is the number in canonical decimal text: no exponent when it is short, e.g. "90",
// "0.5", "-12.25", "1e+400".
func (n Number) String() string {
	d := n.dec
	if d.digits == "" {
		return "0"
	}
	sign := ""
	if d.neg {
		sign = "-"
	}
	nd := int64(len(d.digits))
	switch {
	case d.exp >= nd && d.exp <= 21: // integer
		return sign + d.digits + strings.Repeat("0", int(d.exp-nd))
	case d.exp > 0 && d.exp < nd:
		return sign + d.digits[:d.exp] + "." + d.digits[d.exp:]
	case d.exp <= 0 && d.exp > -6:
		return sign + "0." + strings.Repeat("0", int(-d.exp)) + d.digits
	}
	mant := d.digits[:1]
	if nd > 1 {
		mant += "." + d.digits[1:]
	}
	e := d.exp - 1
	es := "+"
	if e < 0 {
		es = ""
	}
	return sign + mant + "e" + es + strconv.FormatInt(e, 10)
}

// Float64 is the nearest float64 to n (±Inf beyond float64's range); for display and for CEL.
func (n Number) Float64() float64 {
	f, _ := strconv.ParseFloat(n.String(), 64)
	return f
}

// MarshalJSON writes the exact number.
func (n Number) MarshalJSON() ([]byte, error) { return []byte(n.String()), nil }

// Cmp compares n and m exactly: -1, 0 or +1.
func (n Number) Cmp(m Number) int {
	var v numView[string]
	v.neg, v.mant, v.exp, v.first, v.n, v.dot = m.dec.neg, m.dec.digits, m.dec.exp, 0, len(m.dec.digits), len(m.dec.digits)
	return -cmpView(v, &n.dec)
}

// floor returns the greatest float64 not above d and whether it equals d.
func (d decimal) floor() (float64, bool) {
	if d.digits == "" {
		return 0, true
	}
	nd := int64(len(d.digits))
	switch {
	case d.exp > 310: // beyond MaxFloat64 (≈1.8e308) in magnitude
		if d.neg {
			return math.Inf(-1), false
		}
		return math.MaxFloat64, false
	case d.exp < -330: // below the smallest subnormal (≈4.9e-324), not zero
		if d.neg {
			return -math.SmallestNonzeroFloat64, false
		}
		return 0, false
	}
	mant, _ := new(big.Int).SetString(d.digits, 10)
	r := new(big.Rat).SetInt(mant)
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(abs64(d.exp-nd)), nil)
	if d.exp-nd >= 0 {
		r.Mul(r, new(big.Rat).SetInt(scale))
	} else {
		r.Quo(r, new(big.Rat).SetInt(scale))
	}
	if d.neg {
		r.Neg(r)
	}
	f, exact := r.Float64()
	if exact {
		return f, true
	}
	if math.IsInf(f, 0) {
		if f > 0 {
			return math.MaxFloat64, false
		}
		return math.Inf(-1), false
	}
	if new(big.Rat).SetFloat64(f).Cmp(r) > 0 {
		f = math.Nextafter(f, math.Inf(-1))
	}
	return f, false
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// numView is a decimal read in place from a number's text, without copying its digits: the
// hot path compares a request's json.Number with a literal without allocating.
type numView[T ~string | ~[]byte] struct {
	neg   bool
	mant  T     // the digits, with at most one '.' at index dot (dot == len(mant) when none)
	dot   int   //
	first int   // index, among the digits (the '.' skipped), of the first significant digit
	n     int   // significant digits, from first to the last non-zero digit
	exp   int64 // value = ±0.(significant digits) × 10^exp
}

// digit is the i-th significant digit.
func (v *numView[T]) digit(i int) byte {
	j := v.first + i
	if j >= v.dot {
		j++
	}
	return v.mant[j]
}

// maxExp bounds a scanned exponent; beyond it every non-zero number compares the same way.
const maxExp = 1 << 40

// scanNumber reads a number's text. Strict is JSON's grammar (-?(0|[1-9][0-9]*)(.[0-9]+)?
// ([eE][+-]?[0-9]+)?); lenient also takes a '+' sign, leading zeros, ".5" and "5.".
func scanNumber[T ~string | ~[]byte](s T, lenient bool) (numView[T], bool) {
	var v numView[T]
	i := 0
	if i < len(s) && (s[i] == '-' || (lenient && s[i] == '+')) {
		v.neg = s[i] == '-'
		i++
	}
	start := i
	intDigits, fracDigits := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		intDigits++
	}
	if !lenient && (intDigits == 0 || (intDigits > 1 && s[start] == '0')) {
		return v, false
	}
	v.dot = i - start
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			fracDigits++
		}
		if fracDigits == 0 && !lenient {
			return v, false
		}
	}
	if intDigits+fracDigits == 0 {
		return v, false
	}
	v.mant = s[start:i]
	var e int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		if i == len(s) {
			return v, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if e < maxExp {
				e = e*10 + int64(s[i]-'0')
			}
			i++
		}
		if eneg {
			e = -e
		}
	}
	if i != len(s) {
		return v, false
	}
	all := intDigits + fracDigits
	digitAt := func(j int) byte {
		if j >= v.dot {
			j++
		}
		return v.mant[j]
	}
	first := 0
	for first < all && digitAt(first) == '0' {
		first++
	}
	if first == all {
		return numView[T]{dot: v.dot, mant: v.mant}, true // zero, whatever its sign
	}
	last := all - 1
	for digitAt(last) == '0' {
		last--
	}
	v.first, v.n = first, last-first+1
	v.exp = int64(intDigits-first) + e
	return v, true
}

// cmpView compares v with d exactly.
func cmpView[T ~string | ~[]byte](v numView[T], d *decimal) int {
	vs, ds := sign(v.n == 0, v.neg), sign(d.digits == "", d.neg)
	if vs != ds {
		if vs < ds {
			return -1
		}
		return 1
	}
	if vs == 0 {
		return 0
	}
	return vs * cmpMag(&v, d)
}

func sign(zero, neg bool) int {
	switch {
	case zero:
		return 0
	case neg:
		return -1
	}
	return 1
}

// cmpMag compares the magnitudes of two non-zero numbers.
func cmpMag[T ~string | ~[]byte](v *numView[T], d *decimal) int {
	if v.exp != d.exp {
		if v.exp < d.exp {
			return -1
		}
		return 1
	}
	n := min(v.n, len(d.digits))
	for i := 0; i < n; i++ {
		a, b := v.digit(i), d.digits[i]
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.n < len(d.digits):
		return -1
	case v.n > len(d.digits):
		return 1
	}
	return 0
}

// two53 bounds the integers a float64 holds exactly.
const two53 = 1 << 53

// cmpNumber compares a parameter value with a literal exactly; ok is false when v is not a number
// (or is NaN, or is a json.Number whose text is not a JSON number). It does not allocate.
func cmpNumber(v any, n *Number) (c int, ok bool) {
	switch x := v.(type) {
	case float64:
		return cmpFloat(x, n)
	case json.Number:
		nv, ok := scanNumber(string(x), false)
		if !ok {
			return 0, false
		}
		return cmpView(nv, &n.dec), true
	case int:
		return cmpInt(int64(x), n), true
	case int64:
		return cmpInt(x, n), true
	case int32:
		return cmpFloat(float64(x), n)
	case float32:
		return cmpFloat(float64(x), n)
	case uint64:
		if x <= two53 {
			return cmpFloat(float64(x), n)
		}
		var buf [24]byte
		nv, _ := scanNumber(strconv.AppendUint(buf[:0], x, 10), false)
		return cmpView(nv, &n.dec), true
	case Number:
		return x.Cmp(*n), true
	}
	return 0, false
}

func cmpInt(x int64, n *Number) int {
	if x >= -two53 && x <= two53 {
		c, _ := cmpFloat(float64(x), n) // exact: |x| ≤ 2^53
		return c
	}
	var buf [24]byte
	nv, _ := scanNumber(strconv.AppendInt(buf[:0], x, 10), false)
	return cmpView(nv, &n.dec)
}

// cmpFloat is the fast path: one float comparison against lo (see Number).
func cmpFloat(x float64, n *Number) (int, bool) {
	switch {
	case x != x: // NaN is not a number a limit can hold
		return 0, false
	case x < n.lo:
		return -1, true
	case x > n.lo:
		return 1, true
	case n.exact:
		return 0, true
	}
	return -1, true // x == lo, and the literal is above lo
}
