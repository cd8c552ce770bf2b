package inspect

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func TestPIIDetector(t *testing.T) {
	tests := []struct {
		name, key, raw string
		want           []kindLevel
	}{
		{"email", "body", "write to dana.k+news@mail.example.co.uk today", []kindLevel{{KindPIIEmail, threat.Low}}},
		{"visa grouped", "note", "card 4111 1111 1111 1111 exp 09/29", []kindLevel{{KindPIICreditCard, threat.Medium}}},
		{"amex plain", "note", "378282246310005", []kindLevel{{KindPIICreditCard, threat.Medium}}},
		{"luhn failure", "note", "order 4111111111111112 shipped", nil},
		{"ssn", "form", "SSN 123-45-6789 on file", []kindLevel{{KindPIIUSSSN, threat.Medium}}},
		{"ssn area 666 invalid", "form", "ref 666-12-3456", nil},
		{"ssn area 9xx invalid", "form", "ref 912-12-3456", nil},
		{"ssn group 00 invalid", "form", "ref 123-00-4567", nil},
		{"iban de", "memo", "pay to DE89 3704 0044 0532 0130 00 please", []kindLevel{{KindPIIIBAN, threat.Medium}}},
		{"iban gb compact", "memo", "GB82WEST12345698765432", []kindLevel{{KindPIIIBAN, threat.Medium}}},
		{"iban bad checksum", "memo", "GB82WEST12345698765431", nil},
		{"ipv4", "log", "login from 203.0.113.77 failed", []kindLevel{{KindPIIIPAddress, threat.Low}}},
		{"ipv6", "log", "peer 2001:db8::8a2e:370:7334 closed", []kindLevel{{KindPIIIPAddress, threat.Low}}},
		{"intl phone", "msg", "call +44 20 7946 0958 after 5", []kindLevel{{KindPIIPhone, threat.Low}}},
		{"nanp phone", "msg", "my number is 415-555-0132", []kindLevel{{KindPIIPhone, threat.Low}}},
		{"phone key", "phone", "7946 0958", []kindLevel{{KindPIIPhone, threat.Low}}},
		{"date is not a phone", "msg", "meet on 2026-03-14 10:30", nil},
		{"amount is not a phone", "msg", "revenue was 12 345 678 euros", nil},
		// Dates and times as programs print them (server-filesystem's get_file_info prints
		// JavaScript's Date.toString) are not phone numbers.
		{"js date is not a phone", "text", "modified: Sun Dec 06 2026 23:14:27 GMT+0000 (Coordinated Universal Time)", nil},
		{"js date in phone context", "contact", "Sun Dec 06 2026 23:14:27 GMT+0000", nil},
		{"day month year time", "msg", "updated 06 12 2026 23:14", nil},
		{"long month date time", "msg", "on December 06 2026 09:30 we met", nil},
		{"iso date time with space", "phone", "2026-12-06 23:14:27", nil},
		{"dotted date time", "msg", "call on 06.12.2026 23:14", nil},
		{"ctime", "msg", "Sun Dec  6 23:14:27 2026", nil},
		{"rfc 1123", "msg", "Date: Sun, 06 Dec 2026 23:14:27 GMT", nil},
		{"time then phone", "msg", "at 23:14 call +44 20 7946 0958", []kindLevel{{KindPIIPhone, threat.Low}}},
		{"version is not an ip", "msg", "upgrade to v1.2.3.4", nil},
		{"identifier digits", "id", "order_4111111111111111", nil},
		{"several kinds", "msg", "mail a@b.io or call +1 (415) 555-0132", []kindLevel{{KindPIIEmail, threat.Low}, {KindPIIPhone, threat.Low}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspectOne(piiDetector{}, "send", tt.key, tt.raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestPIIEvidenceRedacted(t *testing.T) {
	const card = "5555555555554444"
	v := testValue("$.n", "n", "pay with "+card)
	var got []Finding
	piiDetector{}.Inspect(&Call{}, &v, func(f Finding) { got = append(got, f) })
	if len(got) != 1 || strings.Contains(got[0].Evidence, card[2:14]) || got[0].Evidence != "55…44 (16 chars)" {
		t.Errorf("evidence not redacted: %+v", got)
	}
}

func TestPIINeverHigh(t *testing.T) {
	v := testValue("$.x", "phone", "4111111111111111 123-45-6789 GB82WEST12345698765432 a@b.io +1 415 555 0100 10.0.0.1")
	piiDetector{}.Inspect(&Call{}, &v, func(f Finding) {
		if f.Severity >= threat.High {
			t.Errorf("PII finding at %v: %+v", f.Severity, f)
		}
	})
}

func FuzzPIIDetector(f *testing.F) {
	for _, s := range []string{"a@b.co", "4111 1111 1111 1111", "123-45-6789", "DE89370400440532013000", "::1", "+1 (2", "@@@."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v := testValue("$.x", "x", raw)
		piiDetector{}.Inspect(&Call{}, &v, func(fd Finding) {
			if !strings.HasPrefix(fd.Kind, "pii.") || fd.Severity >= threat.High || fd.Score <= 0 || fd.Score > 1 {
				t.Fatalf("bad finding %+v", fd)
			}
		})
	})
}

func BenchmarkPII(b *testing.B) { benchDetector(b, piiDetector{}) }

// TestIsMonthFoldsLikeEqualFold holds isMonth to its definition with strings.EqualFold per month,
// over month names and near misses in every case.
func TestIsMonthFoldsLikeEqualFold(t *testing.T) {
	ref := func(w string) bool {
		for _, m := range months {
			if strings.EqualFold(w[:3], m) && (len(w) == 3 || strings.EqualFold(w, monthName(m))) {
				return true
			}
		}
		return false
	}
	n := 0
	for _, w := range []string{"jan", "January", "FEB", "february", "Mar", "march", "marc", "marches", "apr", "APRIL", "may", "MAY",
		"mAy", "jun", "June", "jul", "july", "aug", "August", "sep", "sept", "September", "oct", "October", "nov", "NOVEMBER",
		"dec", "December", "decembers", "xmar", "mab", "the", "Monday"} {
		if got, want := isMonth(w), ref(w); got != want {
			t.Errorf("isMonth(%q) = %v, want %v", w, got, want)
		}
		if isMonth(w) {
			n++
		}
	}
	if n < 20 {
		t.Fatalf("only %d month names recognised", n)
	}
	for s, want := range map[string]bool{"on March ": true, "on mar, ": true, "due 1mar ": false, "on March": false, "on March   ": false, "on Marc ": false} {
		if got := afterMonth(s); got != want {
			t.Errorf("afterMonth(%q) = %v, want %v", s, got, want)
		}
	}
}
