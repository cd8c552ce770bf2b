package inspect

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// PII finding kinds. Each is its own kind so that a policy can allow card numbers to a payments
// tool and deny them everywhere else.
const (
	KindPIIEmail      = "pii.email"
	KindPIIPhone      = "pii.phone"
	KindPIICreditCard = "pii.credit_card"
	KindPIIUSSSN      = "pii.us_ssn"
	KindPIIIBAN       = "pii.iban"
	KindPIIIPAddress  = "pii.ip_address"
)

// piiDetector finds personal data. PII is data, not an attack: its findings are low (contact
// details, addresses) or medium (payment cards, SSNs, IBANs) and never reach high on their own —
// whether it may flow to a tool is the policy's decision, by kind.
//
// Numbers are validated, not just matched: cards by Luhn and issuer prefix, SSNs by the SSA's
// never-issued ranges, IBANs by country length and ISO 7064 mod-97. Phone numbers without a '+',
// parentheses or North-American shape count only in a phone-like parameter or after a word such as
// "phone" or "call".
type piiDetector struct{}

var _ Detector = piiDetector{}

func (piiDetector) Name() string { return "pii" }

// maxPIIScan bounds the bytes scanned per value.
const maxPIIScan = 256 << 10

type piiHit struct {
	n     int
	first string
	spans []Span
	next  int  // where to look for the next match of this kind
	whole bool // a match could not be located
}

func (piiDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	s := v.Raw
	if len(s) > maxPIIScan {
		s = s[:maxPIIScan]
	}
	var hits [6]piiHit // indexed like piiKinds
	add := func(k int, match string) {
		h := &hits[k]
		if h.n == 0 {
			h.first = match
		}
		h.n++
		// Every match is a substring of s, and the scans report each kind left to right: look for
		// it from the end of the last one (then anywhere). One that cannot be found is redacted
		// with its whole value.
		at := -1
		if match != "" {
			if j := strings.Index(s[h.next:], match); j >= 0 {
				at = h.next + j
			} else {
				at = strings.Index(s, match)
			}
		}
		if at < 0 {
			h.whole = true
			return
		}
		h.spans = append(h.spans, Span{at, at + len(match)})
		h.next = at + len(match)
	}
	m := v.readingChars(s)
	if m.has('@') {
		scanEmails(s, func(m string) { add(0, m) })
	}
	// Phone, card, SSN, IPv4 and IBAN numbers all contain a digit: without one, skip their scans.
	if m.any(charDigit) {
		phoneKey := v.keyIs(factPhoneKey, isPhoneKey)
		scanNumbers(s, phoneKey, add)
		scanIBANs(s, func(m string) { add(4, m) })
	}
	if m.has(':') {
		scanIPv6(s, func(m string) { add(5, m) }) // (an IPv6 address has at least two colons)
	}
	for k, h := range hits {
		if h.n == 0 {
			continue
		}
		ev := redact(h.first)
		if h.n > 1 {
			ev += " and " + strconv.Itoa(h.n-1) + " more"
		}
		f := Finding{Kind: piiKinds[k].kind, Severity: piiKinds[k].sev, Path: v.Path, Evidence: ev, Score: piiKinds[k].score}
		// A key's text is not its value's, and a value scanned only in part may hold more.
		if !h.whole && !v.IsKey && len(v.Raw) <= maxPIIScan {
			f.Spans, f.TextLen = h.spans, len(v.Raw)
		}
		report(f)
	}
}

var piiKinds = [6]struct {
	kind  string
	sev   threat.Level
	score float64
}{
	{KindPIIEmail, threat.Low, 0.9},
	{KindPIIPhone, threat.Low, 0.6},
	{KindPIICreditCard, threat.Medium, 0.9},
	{KindPIIUSSSN, threat.Medium, 0.8},
	{KindPIIIBAN, threat.Medium, 0.95},
	{KindPIIIPAddress, threat.Low, 0.9},
}

// phoneKeyWords are the words isPhoneKey looks for, matched in one pass.
var phoneKeyWords = newLitSet("phone", "tel", "mobile", "fax", "cell", "msisdn", "contact", "number")

func isPhoneKey(key string) bool {
	k := strings.ToLower(key)
	return phoneKeyWords.contains(k)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isEmailLocal(c byte) bool {
	return isAlnum(c) || strings.IndexByte("._%+-'", c) >= 0
}

// scanEmails reports every local@domain.tld in s.
func scanEmails(s string, found func(string)) {
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		a := i
		for a > 0 && isEmailLocal(s[a-1]) {
			a--
		}
		b := i + 1
		for b < len(s) && (isAlnum(s[b]) || s[b] == '.' || s[b] == '-') {
			b++
		}
		dom := strings.TrimRight(s[i+1:b], ".-")
		local := strings.TrimLeft(s[a:i], ".")
		dot := strings.LastIndexByte(dom, '.')
		if local == "" || dot <= 0 || len(dom)-dot-1 < 2 {
			continue
		}
		tld := dom[dot+1:]
		letters := true
		for j := 0; j < len(tld); j++ {
			if !(tld[j] >= 'a' && tld[j] <= 'z' || tld[j] >= 'A' && tld[j] <= 'Z') {
				letters = false
			}
		}
		if letters {
			found(local + "@" + dom)
		}
		i = b - 1
	}
}

// scanNumbers walks the runs of digits and separators in s and classifies each as an IPv4 address,
// SSN, payment card or phone number.
func scanNumbers(s string, phoneKey bool, add func(int, string)) {
	for i := 0; i < len(s); i++ {
		// Every number starts at a digit or at the '+' or '(' right before one: jump there.
		if d := nextDigit(s, i); d > i+1 {
			i = d - 2 // (the loop adds one)
			continue
		}
		c := s[i]
		if !(isDigit(c) || (c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1])) {
			continue
		}
		if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '_' || s[i-1] == '$' || s[i-1] == '#' || s[i-1] == '/') {
			for i < len(s) && (isAlnum(s[i]) || s[i] == '.') {
				i++ // inside a word, an identifier or a path
			}
			continue
		}
		j := i + 1
		for j < len(s) {
			d := s[j]
			if isDigit(d) || d == '(' || d == ')' {
				j++
				continue
			}
			if (d == ' ' || d == '-' || d == '.' || d == '/') && j+1 < len(s) && (isDigit(s[j+1]) || s[j+1] == '(') {
				j++
				continue
			}
			if d == ')' || d == ' ' && j+1 < len(s) && s[j-1] == ')' {
				j++
				continue
			}
			break
		}
		run := strings.TrimRight(s[i:j], " -./(")
		if j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
			i = j
			continue // digits glued to letters: an identifier, not a number
		}
		if run[0] != '+' && (j+1 < len(s) && s[j] == ':' && isDigit(s[j+1]) || afterMonth(s[:i])) {
			// "06 2026 23:14:27", "2026-12-06 23:14", "Dec 06 2026": a run that ends with a
			// clock's hour or starts with a day after a month's name is a date and time, as
			// programs print them (JavaScript's Date.toString, ctime), not a phone number.
			i = j - 1
			continue
		}
		classifyNumber(run, s[:i], phoneKey, add)
		i = j - 1
	}
}

func classifyNumber(run, before string, phoneKey bool, add func(int, string)) {
	digits := make([]byte, 0, len(run))
	seps := 0
	for k := 0; k < len(run); k++ {
		if isDigit(run[k]) {
			digits = append(digits, run[k])
		} else {
			seps++
		}
	}
	nd := len(digits)
	// IPv4 dotted quad.
	if strings.Count(run, ".") == 3 && !cs8.in(run) {
		if a, err := netip.ParseAddr(run); err == nil && a.Is4() {
			add(5, run)
		}
		return
	}
	// SSN: exactly ddd-dd-dddd (or with spaces).
	if len(run) == 11 && nd == 9 && (run[3] == '-' && run[6] == '-' || run[3] == ' ' && run[6] == ' ') {
		if validSSN(string(digits)) {
			add(3, run)
		}
		return // SSN-shaped but never issued: a reference number, not a phone
	}
	if looksLikeDate(run) || strings.Count(run, ".") == 1 && seps == 1 {
		return
	}
	// Payment card: 12-19 digits, Luhn-valid, plausible issuer, grouped plainly if at all.
	if nd >= 12 && nd <= 19 && !cs9.in(run) && (digits[0] >= '2' && digits[0] <= '6' || strings.HasPrefix(string(digits), "1800")) && luhn(digits) {
		add(2, run)
		return
	}
	if nd < 7 || nd > 15 {
		return
	}
	strong := run[0] == '+' || strings.HasPrefix(run, "(") && seps >= 2 || nanp(run) || phoneGroups(run, digits)
	if strong || seps >= 1 && (phoneKey || phoneContext(before)) {
		add(1, run)
	}
}

// months are the English month abbreviations dates are printed with.
var months = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// afterMonth reports whether before ends with a month's name (abbreviated or whole, any case)
// and one or two spaces or a comma: the number after it is a day of the month.
func afterMonth(before string) bool {
	b := strings.TrimRight(before, " ,")
	if len(before)-len(b) == 0 || len(before)-len(b) > 2 {
		return false
	}
	// The word before the spaces: letters only, at most "september".
	k := len(b)
	for k > 0 && len(b)-k < 10 && (b[k-1]|0x20) >= 'a' && (b[k-1]|0x20) <= 'z' {
		k--
	}
	w := b[k:]
	if len(w) < 3 || k > 0 && isAlnum(b[k-1]) {
		return false
	}
	return isMonth(w)
}

// isMonth reports whether w, ASCII letters, is a month's name, abbreviated or whole, in any case.
func isMonth(w string) bool {
	if len(w) < 3 {
		return false
	}
	// |0x20 folds the case of an ASCII letter as EqualFold would, without a call per month.
	a, b1, c := w[0]|0x20, w[1]|0x20, w[2]|0x20
	for _, m := range months {
		if a == m[0] && b1 == m[1] && c == m[2] {
			return len(w) == 3 || strings.EqualFold(w, monthName(m))
		}
	}
	return false
}

// monthName is the full name of the month abbreviated m.
func monthName(m string) string {
	switch m {
	case "jan":
		return "january"
	case "feb":
		return "february"
	case "mar":
		return "march"
	case "apr":
		return "april"
	case "jun":
		return "june"
	case "jul":
		return "july"
	case "aug":
		return "august"
	case "sep":
		return "september"
	case "oct":
		return "october"
	case "nov":
		return "november"
	case "dec":
		return "december"
	}
	return m // may
}

// phoneGroups matches the grouped national shapes: a trunk-prefix 0 with 9-12 digits in two or
// more groups (079 2718 1155, 0680 298 70 63), or three or more groups of 2-4 digits that are not
// a thousands-separated amount (71-33-52-22, 78 651 450 but not 12 345 678).
func phoneGroups(run string, digits []byte) bool {
	groups := strings.FieldsFunc(run, func(c rune) bool { return c == ' ' || c == '-' || c == '.' })
	if len(groups) < 2 || cs10.in(run) {
		return false
	}
	if len(groups[0]) == 4 && len(run) > 7 && (run[4] == '-' || run[4] == '/' || run[4] == '.') && run[7] == run[4] {
		return false // yyyy-mm-dd, perhaps with a time after it
	}
	if digits[0] == '0' && len(digits) >= 9 && len(digits) <= 12 && len(groups[0]) >= 3 && len(groups[0]) <= 4 {
		return true
	}
	if len(groups) < 3 || len(digits) < 8 || len(digits) > 12 {
		return false
	}
	thousands := len(groups[0]) <= 3
	for _, g := range groups {
		if len(g) < 2 || len(g) > 4 {
			return false
		}
	}
	for _, g := range groups[1:] {
		if len(g) != 3 {
			thousands = false
		}
	}
	return !thousands
}

// nanp matches the North American shapes 555-123-4567, 555.123.4567, 555 123 4567.
func nanp(r string) bool {
	if len(r) != 12 {
		return false
	}
	for k := 0; k < 12; k++ {
		if k == 3 || k == 7 {
			if r[k] != '-' && r[k] != '.' && r[k] != ' ' || r[k] != r[3] {
				return false
			}
		} else if !isDigit(r[k]) {
			return false
		}
	}
	return true
}

// phoneContextWords are the words phoneContext looks for, matched in one pass.
var phoneContextWords = newLitSet("phone", "tel", "call", "mobile", "cell", "fax", "contact", "number", "whatsapp", "sms", "text me", "reach me", "dial")

// phoneContext reports a phone word shortly before a number.
func phoneContext(before string) bool {
	if len(before) > 40 {
		before = before[len(before)-40:]
	}
	b := strings.ToLower(before)
	return phoneContextWords.contains(b)
}

// looksLikeDate matches yyyy-mm-dd, dd/mm/yyyy, dd.mm.yyyy and similar.
func looksLikeDate(r string) bool {
	// The non-empty fields between '-', '/' and '.' separators, counted without building a slice
	// (this runs for every number in every value).
	var lens [3]int
	n := 0
	for i := 0; i < len(r); {
		if c := r[i]; c == '-' || c == '/' || c == '.' {
			i++
			continue
		}
		j := i
		for j < len(r) && r[j] != '-' && r[j] != '/' && r[j] != '.' {
			j++
		}
		if n == len(lens) {
			return false // more than three fields
		}
		lens[n] = j - i
		n++
		i = j
	}
	if n != 3 || cs11.in(r) {
		return false
	}
	for _, l := range lens {
		if l != 2 && l != 4 && l != 1 {
			return false
		}
	}
	return lens[0] == 4 || lens[2] == 4
}

// luhn validates the check digit of a card number.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for k := len(d) - 1; k >= 0; k-- {
		n := int(d[k] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

// validSSN applies the SSA's rules: area 000, 666 and 900-999, group 00 and serial 0000 were never
// issued.
func validSSN(d string) bool {
	area, group, serial := d[:3], d[3:5], d[5:]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return false
	}
	return true
}

// ibanLengths is the IBAN length per country (ISO 13616 registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
	"MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
	"QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
	"ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// scanIBANs reports every IBAN in s: two letters, two check digits and the country's number of
// alphanumerics, optionally in groups of four separated by single spaces, passing mod-97.
func scanIBANs(s string, found func(string)) {
	for i := 0; i+15 <= len(s); i++ {
		// An IBAN's third byte is a digit: jump to the next position where that holds.
		if d := nextDigit(s, i+2); d > i+2 {
			i = d - 3 // (the loop adds one)
			continue
		}
		if !isDigit(s[i+2]) || !isDigit(s[i+3]) || !isLetter(s[i]) || !isLetter(s[i+1]) || i > 0 && isAlnum(s[i-1]) {
			continue
		}
		cc := strings.ToUpper(s[i : i+2])
		want, ok := ibanLengths[cc]
		if !ok {
			continue
		}
		buf := make([]byte, 0, 34)
		j := i
		for j < len(s) && len(buf) < want {
			if isAlnum(s[j]) {
				buf = append(buf, upper(s[j]))
				j++
			} else if s[j] == ' ' && j+1 < len(s) && isAlnum(s[j+1]) && len(buf)%4 == 0 {
				j++
			} else {
				break
			}
		}
		if len(buf) == want && (j == len(s) || !isAlnum(s[j])) && ibanMod97(buf) {
			found(s[i:j])
			i = j - 1
		}
	}
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 32
	}
	return c
}

// ibanMod97 moves the first four characters to the end, maps letters to 10..35 and checks that the
// number is 1 modulo 97 (ISO 7064 MOD 97-10).
func ibanMod97(b []byte) bool {
	r := 0
	step := func(c byte) bool {
		switch {
		case isDigit(c):
			r = (r*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			r = (r*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
		return true
	}
	for _, c := range b[4:] {
		if !step(c) {
			return false
		}
	}
	for _, c := range b[:4] {
		if !step(c) {
			return false
		}
	}
	return r == 1
}

// scanIPv6 reports IPv6 addresses: tokens of hex digits and at least two colons that parse.
func scanIPv6(s string, found func(string)) {
	if strings.Count(s, ":") < 2 {
		return
	}
	for i := 0; i < len(s); i++ {
		if !(isHex(s[i]) || s[i] == ':') || i > 0 && (isAlnum(s[i-1]) || s[i-1] == ':') {
			continue
		}
		j := i
		for j < len(s) && (isHex(s[j]) || s[j] == ':' || s[j] == '.') {
			j++
		}
		tok := strings.TrimRight(s[i:j], ".")
		if strings.Count(tok, ":") >= 2 && len(tok) >= 3 && (j == len(s) || !isAlnum(s[j])) {
			if a, err := netip.ParseAddr(tok); err == nil && a.Is6() && !a.IsUnspecified() {
				found(tok)
			}
		}
		i = j
	}
}
