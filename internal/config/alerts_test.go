package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/alert"
)

func TestAlertsConfig(t *testing.T) {
	c, err := Parse("empty.yaml", nil)
	if err != nil || !c.Alerts.On() || !c.Alerts.WebhookOn() {
		t.Fatalf("alerts not on by default: %v %+v", err, c.Alerts)
	}
	c, err = Parse("gw.yaml", []byte("alerts:\n  window: 10m\n  spike_floor: 25\n  disabled: [new_tool, unusual_hour]\n  webhook: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Alerts.Window != 10*time.Minute || c.Alerts.SpikeFloor != 25 || c.Alerts.WebhookOn() || len(c.Alerts.Disabled) != 2 {
		t.Fatalf("%+v", c.Alerts)
	}
	for yaml, want := range map[string]string{
		"alerts:\n  disabled: [new_tools]\n":  "alerts.disabled[0]",
		"alerts:\n  error_rate: 2\n":          "alerts.error_rate",
		"alerts:\n  cooldown: -1m\n":          "alerts.cooldown",
		"alerts:\n  baseline_windows: 5000\n": "alerts.baseline_windows",
		"alerts:\n  spike_flor: 3\n":          "spike_flor",
	} {
		if _, err := Parse("gw.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one naming %s", yaml, err, want)
		}
	}
}

// alerts.disabled accepts exactly the engine's rules.
func TestAlertRuleNamesMatchTheEngine(t *testing.T) {
	var engine []string
	for _, r := range alert.Rules {
		engine = append(engine, string(r))
	}
	if !slices.Equal(engine, alertRules) {
		t.Fatalf("config knows %v, the engine %v", alertRules, engine)
	}
}
