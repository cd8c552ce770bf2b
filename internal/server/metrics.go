package server

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portcullis-ai/portcullis/internal/auditindex"
	"github.com/portcullis-ai/portcullis/internal/guard"
)

// Metrics are the gateway's Prometheus metrics. Label values that callers choose (agent, tool)
// are bounded in number and in length: past maxLabelValues distinct values, new ones are counted
// as "other"; a name that is not a valid tool name (guard.ValidToolName: at most 256 printable
// bytes) is counted as "invalid" and never becomes a label — so that nobody can exhaust the
// metrics store, or swell every scrape, by inventing tool names.
type Metrics struct {
	reg       *prometheus.Registry
	own       []prometheus.Collector
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	steps     *prometheus.HistogramVec
	rejected  *prometheus.CounterVec
	results   *prometheus.CounterVec
	// undelivered counts decisions recorded after their caller had gone (deadline or hang-up).
	undelivered *prometheus.CounterVec
	// ReloadErrors counts rejected policy or configuration reloads.
	ReloadErrors prometheus.Counter
	// llmCalls counts the LLM gateway's model calls by format and outcome code.
	llmCalls *prometheus.CounterVec

	labels *boundedLabels
	// The series a decision observes, each vector's in a cache of its own.
	decisionSeries            seriesCache[decisionKey, prometheus.Counter]
	latencySeries, stepSeries seriesCache[string, prometheus.Observer]
}

const (
	maxLabelValues = 1000
	maxLabelLen    = guard.MaxToolNameLen
)

// NewMetrics registers the metrics; ledgerDepth, when not nil, is exported as the ledger queue depth.
func NewMetrics(ledgerDepth func() float64) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	buckets := []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, .01, .025, .05, .1, .25, 1}
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_decisions_total",
			Help: "Decisions by agent, tool and decision."}, []string{"agent", "tool", "decision"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_decision_duration_seconds",
			Help: "Time to answer a decision request, by decision.", Buckets: buckets}, []string{"decision"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_pipeline_step_duration_seconds",
			Help: "Time spent in each step of the decision pipeline.", Buckets: buckets}, []string{"step"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_requests_rejected_total",
			Help: "Requests refused before a decision, by reason."}, []string{"code"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_tool_results_total",
			Help: "Tool results by action (pass, redact, block)."}, []string{"action"}),
		undelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_decisions_undelivered_total",
			Help: "Decisions recorded in the ledger after the caller had gone (its deadline passed or it hung up), by decision."},
			[]string{"decision"}),
		ReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "portcullis_reload_errors_total",
			Help: "Policy and configuration reloads rejected (the previous version kept serving)."}),
		llmCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_llm_calls_total",
			Help: "LLM gateway model calls by wire format and outcome (ok, the gateway's error code, upstream_<status> for a provider error relayed)."},
			[]string{"format", "code"}),
		labels: &boundedLabels{seen: map[labelKey]bool{}},
	}
	m.decisionSeries.resolve = func(k decisionKey) prometheus.Counter {
		return m.decisions.WithLabelValues(k.agent, k.tool, k.decision)
	}
	m.latencySeries.resolve = func(decision string) prometheus.Observer { return m.latency.WithLabelValues(decision) }
	m.stepSeries.resolve = func(step string) prometheus.Observer { return m.steps.WithLabelValues(step) }
	m.register(m.decisions, m.latency, m.steps, m.rejected, m.results, m.undelivered, m.ReloadErrors, m.llmCalls)
	if ledgerDepth != nil {
		m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_ledger_queue_depth",
			Help: "Records waiting for the ledger's writer."}, ledgerDepth))
	}
	return m
}

// register registers the gateway's own collectors, remembered so that their names can be listed
// (examples/prometheus/alerts.yaml may use only those).
func (m *Metrics) register(cs ...prometheus.Collector) {
	m.reg.MustRegister(cs...)
	m.own = append(m.own, cs...)
}

// MCPLogs exports the MCP gateway's upstream log messages by outcome,
// portcullis_mcp_log_messages_total{outcome}; counts returns the running totals.
func (m *Metrics) MCPLogs(counts func() map[string]uint64) {
	m.register(&countsCollector{desc: prometheus.NewDesc("portcullis_mcp_log_messages_total",
		"Upstream MCP log messages by outcome (relayed, redacted, withheld, unattributed, filtered, undelivered).",
		[]string{"outcome"}, nil), counts: counts})
}

// Shadow exports the calls decided under the candidate policy set by transition (enforced
// decision → candidate's, "ALLOW→DENY"; agreement too), portcullis_shadow_decisions_total{transition}.
func (m *Metrics) Shadow(counts func() map[string]uint64) {
	m.register(&countsCollector{desc: prometheus.NewDesc("portcullis_shadow_decisions_total",
		"Calls decided under the shadow (candidate) policy set, by transition from the enforced decision to the candidate's.",
		[]string{"transition"}, nil), counts: counts})
}

// ProposalsLost exports the allowed model calls whose proposal the proposal store could not keep
// (require_proposal), portcullis_proposals_lost_total: each refuses that call from another
// transport as not_proposed.
func (m *Metrics) ProposalsLost(n func() uint64) {
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portcullis_proposals_lost_total",
		Help: "Proposals of allowed model calls the proposal store could not keep (the call from another transport is refused not_proposed)."},
		func() float64 { return float64(n()) }))
}

// ConsoleSessionsRefused exports the shared console sessions this replica refused because it
// cannot verify them, portcullis_console_sessions_refused_total: sealed under another hash key
// or signed in through OIDC where it is not configured. Above zero, the replicas' configurations
// differ; the sessions are left for the replicas that verify them.
func (m *Metrics) ConsoleSessionsRefused(n func() uint64) {
	m.register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "portcullis_console_sessions_refused_total",
		Help: "Shared console sessions this replica cannot verify (another hash key, or OIDC not configured here): refused here, left for the replicas that can."},
		func() float64 { return float64(n()) }))
}

// AuditIndex exports the audit indexer's statistics (the console's search index, kept up with
// the committed ledger in the background): portcullis_audit_index_records_total,
// portcullis_audit_index_skipped_total, portcullis_audit_index_failures_total,
// portcullis_audit_index_rebuilds_total and portcullis_audit_index_watermark.
func (m *Metrics) AuditIndex(stats func() auditindex.Stats) {
	m.register(&auditIndexCollector{stats: stats,
		indexed: prometheus.NewDesc("portcullis_audit_index_records_total",
			"Ledger records the audit index took in since the gateway started.", nil, nil),
		skipped: prometheus.NewDesc("portcullis_audit_index_skipped_total",
			"Ledger records left out of the audit index because they could not be decoded (each logged).", nil, nil),
		failures: prometheus.NewDesc("portcullis_audit_index_failures_total",
			"Audit index batches that failed and were tried again; the ledger is never touched.", nil, nil),
		rebuilds: prometheus.NewDesc("portcullis_audit_index_rebuilds_total",
			"Times the audit index was emptied and rebuilt from the ledger (a torn tail, a record replaced, a damaged row).", nil, nil),
		watermark: prometheus.NewDesc("portcullis_audit_index_watermark",
			"The ledger sequence number the audit index has reached: records below it are indexed, those above are scanned by a search.", nil, nil),
	})
}

type auditIndexCollector struct {
	stats                                           func() auditindex.Stats
	indexed, skipped, failures, rebuilds, watermark *prometheus.Desc
}

func (c *auditIndexCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.indexed
	ch <- c.skipped
	ch <- c.failures
	ch <- c.rebuilds
	ch <- c.watermark
}

func (c *auditIndexCollector) Collect(ch chan<- prometheus.Metric) {
	// One call, but not one instant: Stats loads each counter on its own (a scrape never waits
	// on the indexer), so a batch that ends meanwhile may show in indexed and not yet in the
	// watermark. Each counter is still monotonic from scrape to scrape.
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.indexed, prometheus.CounterValue, float64(s.Indexed))
	ch <- prometheus.MustNewConstMetric(c.skipped, prometheus.CounterValue, float64(s.Skipped))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(c.rebuilds, prometheus.CounterValue, float64(s.Rebuilds))
	ch <- prometheus.MustNewConstMetric(c.watermark, prometheus.GaugeValue, float64(s.Watermark))
}

// countsCollector exports running totals kept elsewhere as one counter per label value.
type countsCollector struct {
	desc   *prometheus.Desc
	counts func() map[string]uint64
}

func (c *countsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *countsCollector) Collect(ch chan<- prometheus.Metric) {
	for label, n := range c.counts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), label)
	}
}

// ExportStats is one export sink's running state (docs/export.md).
type ExportStats struct {
	Exported, Dropped, Lag uint64
	Failing                bool
}

// Export exports the ledger export sinks' state, by sink: portcullis_export_records_total,
// portcullis_export_dropped_total, portcullis_export_lag_records and portcullis_export_failing.
func (m *Metrics) Export(stats func() map[string]ExportStats) {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"sink"}, nil)
	}
	m.register(&exportCollector{stats: stats,
		exported: desc("portcullis_export_records_total", "Ledger records delivered to the export sink."),
		dropped:  desc("portcullis_export_dropped_total", "Ledger records never delivered to the export sink: skipped past max_lag_records or refused by its receiver."),
		lag:      desc("portcullis_export_lag_records", "Ledger records appended but not yet delivered to the export sink."),
		failing:  desc("portcullis_export_failing", "1 while the export sink's last attempt failed."),
	})
}

type exportCollector struct {
	stats                           func() map[string]ExportStats
	exported, dropped, lag, failing *prometheus.Desc
}

func (c *exportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.exported
	ch <- c.dropped
	ch <- c.lag
	ch <- c.failing
}

func (c *exportCollector) Collect(ch chan<- prometheus.Metric) {
	for sink, s := range c.stats() {
		failing := 0.0
		if s.Failing {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(c.exported, prometheus.CounterValue, float64(s.Exported), sink)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped), sink)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(s.Lag), sink)
		ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, failing, sink)
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

func (m *Metrics) observeDecision(d *guard.Decision, elapsed time.Duration) {
	agent := "unauthenticated"
	if d.Agent != nil {
		agent = m.labels.get(labelKey{"agent", d.Agent.ID})
	}
	tool := "other"
	switch {
	case d.Agent == nil: // tools named by unauthenticated callers are not label values
	case d.Code == guard.CodeInvalidToolName || guard.ValidToolName(d.Tool) != nil:
		tool = "invalid"
	default:
		tool = m.labels.get(labelKey{"tool", d.Tool})
	}
	dec := d.Action.String()
	m.decisionSeries.get(decisionKey{agent, tool, dec}).Inc()
	m.latencySeries.get(dec).Observe(elapsed.Seconds())
	for _, s := range [...]struct {
		name string
		d    time.Duration
	}{{"auth", d.Steps.Auth}, {"inspect", d.Steps.Inspect}, {"behavior", d.Steps.Behavior}, {"policy", d.Steps.Policy},
		{"approval", d.Steps.Approval}, {"ledger", d.Steps.Ledger}} {
		if s.d > 0 {
			m.stepSeries.get(s.name).Observe(s.d.Seconds())
		}
	}
}

// seriesCache keeps one vector's series by their label values once resolved: resolving labels
// in a vector (WithLabelValues: the values checked and hashed, a locked map lookup) cost eight
// times per decision what the observations themselves cost. Each vector has a cache of its own,
// so that two vectors' series of the same label values never meet. It holds the vector's own
// series, no others: bounded as they are (boundedLabels).
type seriesCache[K comparable, S any] struct {
	m       sync.Map // K → S
	resolve func(K) S
}

func (c *seriesCache[K, S]) get(k K) S {
	if s, ok := c.m.Load(k); ok {
		return s.(S)
	}
	s, _ := c.m.LoadOrStore(k, c.resolve(k))
	return s.(S)
}

// decisionKey is a decision series' label values.
type decisionKey struct{ agent, tool, decision string }

// ObserveDecision counts a decision made outside the decision API (a tool call the LLM or MCP
// gateway decided), as /v1/decide counts its own.
func (m *Metrics) ObserveDecision(d *guard.Decision, elapsed time.Duration) {
	m.observeDecision(d, elapsed)
}

// ObserveResult counts a tool result or conversation text by the action taken on it.
func (m *Metrics) ObserveResult(action string) { m.results.WithLabelValues(action).Inc() }

// ObserveLLMCall counts one LLM gateway model call. Format and code are the gateway's own
// values (three formats, a fixed set of codes, upstream_<status>), never caller-chosen text.
func (m *Metrics) ObserveLLMCall(format, code string) {
	m.llmCalls.WithLabelValues(m.labels.get(labelKey{"llmformat", format}), m.labels.get(labelKey{"llmcode", code})).Inc()
}

// boundedLabels admits at most maxLabelValues distinct label values.
type boundedLabels struct {
	mu   sync.Mutex
	seen map[labelKey]bool
}

// labelKey is a label value and what it names ("agent", "tool", ...): the same text may be
// both an agent's and a tool's.
type labelKey struct{ kind, value string }

func (b *boundedLabels) get(k labelKey) string {
	if len(k.value) > maxLabelLen {
		return "other" // defence in depth: callers pass checked names, but a label is never long
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[k] {
		return k.value
	}
	if len(b.seen) >= maxLabelValues {
		return "other"
	}
	b.seen[k] = true
	return k.value
}
