package main

import (
	"flag"
	"io"
	"testing"

	"github.com/portcullis-ai/portcullis/internal/inspect/train/build"
)

// -group-power 0.3 once ran as power 1: the flag refuses it, and accepts the quarter steps.
func TestGroupPowerFlagRefusesOtherPowers(t *testing.T) {
	defer func(p float64) { build.GroupPower = p }(build.GroupPower)
	parse := func(v string) error {
		fs := flag.NewFlagSet("eval", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		groupPowerFlag(fs)
		return fs.Parse([]string{"-group-power", v})
	}
	build.GroupPower = 0
	if err := parse("0.3"); err == nil {
		t.Fatalf("-group-power 0.3 accepted (GroupPower %v)", build.GroupPower)
	}
	if build.GroupPower != 0 {
		t.Fatalf("a refused -group-power set GroupPower to %v", build.GroupPower)
	}
	if err := parse("0.75"); err != nil || build.GroupPower != 0.75 {
		t.Fatalf("-group-power 0.75: %v, GroupPower %v", err, build.GroupPower)
	}
}
