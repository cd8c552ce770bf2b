// Command train builds the embedded prompt-injection model, internal/inspect/classifier/model.bin,
// from the shared datasets, bit for bit:
//
//	go run ./internal/inspect/train [-data DIR] [-out FILE]
//
// DIR defaults to $PORTCULLIS_DATASETS, else ../shared/datasets. It reads prompt-injection/ (every
// file), the training half of bipia/ (attacks planted into clean contexts, and the contexts) and
// the team's own examples in internal/inspect/train/examples.jsonl; normalises every text the way
// the inspection engine does; trains five models, each without one fold of source groups (the
// part of a row's source before '#', so expansions of a template never straddle folds), to score
// every row out of fold; chooses the thresholds from those scores (the lowest that keep every
// benign file at or under 4% for medium and 0.4% for high); then trains the final model on
// everything and writes it with those thresholds. It also records the hash of the model built
// the same way from a fixed slice of the corpus (build.SliceFile), which the tests rebuild under
// the race detector; -check compares instead of writing.
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
	"github.com/portcullis-ai/portcullis/internal/inspect/train/build"
)

func main() {
	data := flag.String("data", defaultDataDir(), "datasets directory")
	out := flag.String("out", filepath.Join(repoRoot(), "internal/inspect/classifier/model.bin"), "model file to write")
	check := flag.Bool("check", false, "do not write: exit 1 when the built model differs from -out")
	var opt classifier.Options
	flag.IntVar(&opt.Epochs, "epochs", 0, "experiment: passes per round (0: the default)")
	flag.Float64Var(&opt.L2, "l2", 0, "experiment: weight decay (0: the default)")
	flag.Float64Var(&opt.LR, "lr", 0, "experiment: step (0: the default)")
	flag.Parse()
	start := time.Now()
	rows, err := build.Rows(*data, filepath.Join(repoRoot(), build.ExamplesFile))
	if err != nil {
		fmt.Fprintf(os.Stderr, "train: %v\n  hint: pass -data DIR or set PORTCULLIS_DATASETS\n", err)
		os.Exit(2)
	}
	build.Normalize(rows)
	res := build.Build(rows, opt, runtime.GOMAXPROCS(0))
	slice := build.Build(build.Slice(rows), opt, runtime.GOMAXPROCS(0)).Model.Marshal()
	sliceSum := fmt.Sprintf("%x\n", sha256.Sum256(slice))
	b := res.Model.Marshal()
	zm, zh := res.Model.Logits()
	pm, ph := res.Model.Thresholds()
	fmt.Printf("rows %d, features 2^%d, window %d; thresholds medium %.4f (logit %.3f), high %.4f (logit %.3f)\n",
		len(rows), classifier.Bits, classifier.Window, pm, zm, ph, zh)
	for _, l := range res.Report {
		fmt.Println(l)
	}
	fmt.Printf("model %d bytes, sha256 %x, %v\n", len(b), sha256.Sum256(b), time.Since(start).Round(time.Millisecond))
	if *check {
		old, err := os.ReadFile(*out)
		if err != nil || !bytes.Equal(old, b) {
			fmt.Fprintf(os.Stderr, "train: %s differs from the model the data builds\n", *out)
			os.Exit(1)
		}
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "train: %v\n", err)
		os.Exit(2)
	}
	if err := os.WriteFile(filepath.Join(repoRoot(), build.SliceFile), []byte(sliceSum), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "train: %v\n", err)
		os.Exit(2)
	}
}

func defaultDataDir() string {
	if d := os.Getenv("PORTCULLIS_DATASETS"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), "..", "shared", "datasets")
}

// repoRoot finds the module root (the directory holding go.mod) from the working directory.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
