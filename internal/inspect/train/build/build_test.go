package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
)

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	return filepath.Join("..", "..", "..", "..", rel)
}

// TestOwnExamplesBuildIsFixed trains on the team's examples alone (in the repository, so this
// runs everywhere) with one worker and with several: the model must be the same bytes both times
// and the bytes recorded in testdata/own.sha256. A change to the features, the training or the
// calibration changes that hash: rebuild model.bin (go run ./internal/inspect/train) and update it.
func TestOwnExamplesBuildIsFixed(t *testing.T) {
	rows, err := classifier.ReadJSONL(repoFile(t, ExamplesFile), OwnFile)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i].File = "own" // calibrate on them here: they are the only rows
	}
	Normalize(rows)
	a := Build(rows, classifier.Options{}, 1).Model.Marshal()
	b := Build(rows, classifier.Options{}, 4).Model.Marshal()
	if !bytes.Equal(a, b) {
		t.Fatal("training depends on the number of workers")
	}
	sum := sha256.Sum256(a)
	want, err := os.ReadFile("testdata/own.sha256")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(string(want)) {
		t.Fatalf("model trained on the own examples has sha256 %s, testdata/own.sha256 says %s", got, strings.TrimSpace(string(want)))
	}
}

// TestEmbeddedModelIsReproducible rebuilds the embedded model from the shared datasets and
// compares the bytes; under the race detector or -short, it builds a slice of the corpus and
// compares its hash with the one the training program recorded beside the model. It needs the
// datasets (PORTCULLIS_DATASETS); without them it cannot run and says so.
func TestEmbeddedModelIsReproducible(t *testing.T) {
	dir := os.Getenv("PORTCULLIS_DATASETS")
	if dir == "" {
		t.Skip("PORTCULLIS_DATASETS is not set: the embedded model cannot be rebuilt here")
	}
	rows, err := Rows(dir, repoFile(t, ExamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	Normalize(rows)
	if raceEnabled || testing.Short() {
		// The full run takes minutes under the race detector: build the slice the training
		// program records instead.
		sum := sha256.Sum256(Build(Slice(rows), classifier.Options{}, runtime.GOMAXPROCS(0)).Model.Marshal())
		want, err := os.ReadFile(repoFile(t, SliceFile))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(string(want)) {
			t.Fatalf("the model built from the corpus slice has sha256 %s, %s says %s: run go run ./internal/inspect/train", got, SliceFile, strings.TrimSpace(string(want)))
		}
		return
	}
	got := Build(rows, classifier.Options{}, runtime.GOMAXPROCS(0)).Model.Marshal()
	if !bytes.Equal(got, classifier.Embedded()) {
		t.Fatalf("the embedded model (sha256 %x) is not what the training program builds (sha256 %x): run go run ./internal/inspect/train",
			sha256.Sum256(classifier.Embedded()), sha256.Sum256(got))
	}
}

// A group power between the quarter steps was once run as power 1 without a word: it is refused,
// and GroupPower keeps its value.
func TestSetGroupPowerRefusesOtherPowers(t *testing.T) {
	defer func(p float64) { GroupPower = p }(GroupPower)
	GroupPower = 0
	for _, s := range []string{"0.3", "2", "-0.25", "0.5x", "NaN"} {
		if err := SetGroupPower(s); err == nil {
			t.Errorf("group power %q accepted (GroupPower now %v)", s, GroupPower)
		}
		if GroupPower != 0 {
			t.Fatalf("a refused group power %q set GroupPower to %v", s, GroupPower)
		}
	}
	for _, p := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		if err := SetGroupPower(p); err != nil {
			t.Errorf("group power %s refused: %v", p, err)
		}
	}
	if GroupPower != 1 {
		t.Fatalf("GroupPower %v after setting 1", GroupPower)
	}
	if w := groupWeight(16, 0.5); w != 0.25 {
		t.Fatalf("a group of 16 at power 0.5 weighs %v, want 0.25", w)
	}
}
