package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/version"
)

// OTLP sends records as OpenTelemetry log records over OTLP/HTTP with protobuf encoding (the
// OTLP specification's ExportLogsServiceRequest), one request per batch.
type OTLP struct {
	endpoint string
	service  string
	headers  http.Header
	client   *http.Client
}

// NewOTLP sends to endpoint, the receiver's full logs URL (e.g. http://collector:4318/v1/logs),
// with headers (a receiver's credential) on every request.
func NewOTLP(endpoint, serviceName string, headers http.Header) *OTLP {
	if serviceName == "" {
		serviceName = "portcullis"
	}
	return &OTLP{endpoint: endpoint, service: serviceName, headers: headers.Clone(), client: &http.Client{Timeout: 10 * time.Second}}
}

// Send posts the batch; a 4xx other than 408 and 429 refuses it for good (OTLP/HTTP's
// retryable codes are 429, 502, 503, 504), anything else is retried by the tailer.
func (o *OTLP) Send(ctx context.Context, items []Item) error {
	body, err := proto.Marshal(o.request(items, time.Now()))
	if err != nil {
		return Permanent(fmt.Errorf("otlp: encode: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("otlp: %w", err))
	}
	for k, v := range o.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := o.client.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode/100 == 2:
		var r collogspb.ExportLogsServiceResponse
		if proto.Unmarshal(msg, &r) == nil && r.GetPartialSuccess().GetRejectedLogRecords() > 0 {
			// The receiver took the request and refused some records: resending would not change that.
			return Permanent(fmt.Errorf("otlp: receiver rejected %d records: %s", r.GetPartialSuccess().GetRejectedLogRecords(), r.GetPartialSuccess().GetErrorMessage()))
		}
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return fmt.Errorf("otlp: %s", resp.Status)
	default:
		return Permanent(errors.New("otlp: " + resp.Status))
	}
}

// request builds one ExportLogsServiceRequest: the body is the record's JSON exactly as the
// ledger holds it; the attributes are what a SIEM filters on.
func (o *OTLP) request(items []Item, now time.Time) *collogspb.ExportLogsServiceRequest {
	recs := make([]*logspb.LogRecord, 0, len(items))
	for _, it := range items {
		r := it.Record
		attrs := []*commonpb.KeyValue{
			intAttr("portcullis.seq", int64(it.Seq)),
			strAttr("portcullis.kind", string(r.Event())),
		}
		add := func(k, v string) {
			if v != "" {
				attrs = append(attrs, strAttr(k, v))
			}
		}
		add("portcullis.decision", r.Decision)
		if r.Agent != nil {
			add("portcullis.agent", r.Agent.ID)
		}
		add("portcullis.tool", r.Tool)
		if r.Policy != nil {
			add("portcullis.rule", r.Policy.Rule)
		}
		if r.ThreatLevel != 0 {
			add("portcullis.threat_level", r.ThreatLevel.String())
		}
		add("portcullis.decision_id", r.DecisionID)
		add("portcullis.source", r.Source)
		sev, text := severity(r)
		recs = append(recs, &logspb.LogRecord{
			TimeUnixNano:         uint64(r.Time.UnixNano()),
			ObservedTimeUnixNano: uint64(now.UnixNano()),
			SeverityNumber:       sev,
			SeverityText:         text,
			EventName:            "portcullis." + string(r.Event()),
			Body:                 &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: string(it.Data)}},
			Attributes:           attrs,
		})
	}
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: o.resource()},
		ScopeLogs: []*logspb.ScopeLogs{{
			Scope:      &commonpb.InstrumentationScope{Name: "github.com/portcullis-ai/portcullis/ledger"},
			LogRecords: recs,
		}},
	}}}
}

func (o *OTLP) resource() []*commonpb.KeyValue {
	attrs := []*commonpb.KeyValue{strAttr("service.name", o.service)}
	if v := version.Version; v != "" {
		attrs = append(attrs, strAttr("service.version", v))
	}
	return attrs
}

// severity maps a decision to a log severity: denials and held calls stand out.
func severity(r *ledger.Record) (logspb.SeverityNumber, string) {
	switch {
	case r.Decision == "deny" || r.Kind == ledger.KindRecovery:
		return logspb.SeverityNumber_SEVERITY_NUMBER_WARN, "WARN"
	default:
		return logspb.SeverityNumber_SEVERITY_NUMBER_INFO, "INFO"
	}
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// Close has nothing to release.
func (o *OTLP) Close() error { o.client.CloseIdleConnections(); return nil }
