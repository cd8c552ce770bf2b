package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-ai/portcullis/internal/alert"
	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/ledger"
)

// A burst of denials at a running gateway becomes one denial_spike alert: recorded in the
// ledger as an alert record and posted, signed, to the approvals webhook.
func TestDenialSpikeAlertRecordedAndDelivered(t *testing.T) {
	secret := []byte("a webhook secret of at least thirty-two bytes")
	t.Setenv("PCL_TEST_WEBHOOK_SECRET", string(secret))
	url, got := webhookReceiver(t, secret)
	g := newGatewayWith(t, func(c *config.Config) {
		c.Approvals.Webhook = config.WebhookConfig{URL: url, SecretEnv: "PCL_TEST_WEBHOOK_SECRET", ConsoleURL: "https://pc.example/approvals/"}
		c.Alerts.SpikeFloor = 5
	})
	for range 8 {
		if _, a := g.post("/v1/decide", g.key, []byte(`{"tool":"delete_file","params":{"path":"/tmp/x"}}`)); a.Decision != "DENY" {
			t.Fatalf("decision %q, want DENY", a.Decision)
		}
	}
	var note string
	select {
	case note = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no alert delivered to the webhook")
	}
	var body struct {
		Text       string             `json:"text"`
		Portcullis alert.WebhookEvent `json:"portcullis"`
	}
	delivery, payload, _ := strings.Cut(note, " ")
	if err := json.Unmarshal([]byte(payload), &body); err != nil {
		t.Fatal(err)
	}
	ev := body.Portcullis
	if ev.Event != "alert" || ev.Rule != "denial_spike" || ev.Agent != DemoAgent || !strings.Contains(body.Text, "denial_spike") ||
		ev.URL != "https://pc.example/console/alerts" || delivery != "alert."+strconv.FormatUint(ev.Seq, 10) {
		t.Fatalf("notification %s %s", delivery, payload)
	}
	var alerts []ledger.Record
	g.scanLedger(func(r ledger.Record) {
		if r.Kind == ledger.KindAlert {
			alerts = append(alerts, r)
		}
	})
	if len(alerts) != 1 || alerts[0].Seq != ev.Seq || alerts[0].Alert.Rule != "denial_spike" || alerts[0].Agent.ID != DemoAgent {
		t.Fatalf("alert records %+v", alerts)
	}
	// The spike stays one alert: more denials within the cooldown raise nothing new once the
	// rules have read them.
	for range 5 {
		g.post("/v1/decide", g.key, []byte(`{"tool":"delete_file","params":{"path":"/tmp/y"}}`))
	}
	size, err := g.app.ledgerStore.Size(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(g.app.cfg.DataDir, AlertsStateFile))
		if next, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); next >= size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the alert rules did not read the ledger up to %d (state %q)", size, b)
		}
	}
	n := 0
	g.scanLedger(func(r ledger.Record) {
		if r.Kind == ledger.KindAlert {
			n++
		}
	})
	if n != 1 {
		t.Fatalf("%d alert records, want the one open alert", n)
	}
}
