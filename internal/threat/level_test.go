package threat

import (
	"encoding/json"
	"testing"
)

func TestLevelRoundTrip(t *testing.T) {
	for l := None; l <= Critical; l++ {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		var back Level
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if back != l {
			t.Errorf("round trip of %v gave %v", l, back)
		}
	}
	if _, err := ParseLevel("severe"); err == nil {
		t.Error("ParseLevel accepted an unknown level")
	}
	if l, err := ParseLevel("HIGH"); err != nil || l != High {
		t.Errorf("ParseLevel(HIGH) = %v, %v", l, err)
	}
	if !(None < Low && Low < Medium && Medium < High && High < Critical) {
		t.Error("levels are not ordered")
	}
}
