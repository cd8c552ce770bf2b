package jsonx

import "testing"

func TestCompareUTF16(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"a", "b", -1}, {"b", "a", 1}, {"a", "a", 0}, {"a", "ab", -1},
		{"\ufb33", "\U0001F600", 1}, // code-point order would say -1
		{"\U0001F600", "\U0001F601", -1},
		{"\u00e9", "\u20ac", -1},
	}
	for _, tt := range tests {
		if got := CompareUTF16(tt.a, tt.b); (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("CompareUTF16(%q, %q) = %d, want sign of %d", tt.a, tt.b, got, tt.want)
		}
	}
}
