package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/portcullis-ai/portcullis/internal/config"
	"github.com/portcullis-ai/portcullis/internal/export"
	"github.com/portcullis-ai/portcullis/internal/ledger"
	"github.com/portcullis-ai/portcullis/internal/server"
)

// ExportDir holds each export sink's state file: the next ledger seq it will send.
const ExportDir = "export"

// openExports builds one tailer per export sink, each following the ledger's store on its own
// (a sink that is down holds back no other), and registers them as background work and metrics.
// Nothing here is on the decision path: the tailers read what the ledger has committed.
func (a *App) openExports(ctx context.Context, cfg *config.Config) error {
	if len(cfg.Export.Sinks) == 0 {
		return nil
	}
	tailers := make(map[string]*export.Tailer, len(cfg.Export.Sinks))
	for i, s := range cfg.Export.Sinks {
		sink, err := newSink(s)
		if err != nil {
			return fmt.Errorf("export.sinks[%d]: %w", i, err)
		}
		kinds := []ledger.Kind{ledger.KindDecision}
		if len(s.Kinds) > 0 {
			kinds = kinds[:0]
			for _, k := range s.Kinds {
				kinds = append(kinds, ledger.Kind(k))
			}
		}
		t, err := export.New(ctx, export.Options{Name: s.Name, Store: a.follow(), Sink: sink, Kinds: kinds,
			StateFile: filepath.Join(cfg.DataDir, ExportDir, s.Name+".seq"),
			Batch:     s.BatchRecords, MaxLag: uint64(s.MaxLagRecords), Poll: s.Poll, Log: a.log})
		if err != nil {
			_ = sink.Close()
			return fmt.Errorf("export.sinks[%d]: %w", i, err)
		}
		tailers[s.Name] = t
		a.parts.background("export "+s.Name, t.Run)
	}
	a.metrics.Export(func() map[string]server.ExportStats {
		out := make(map[string]server.ExportStats, len(tailers))
		for name, t := range tailers {
			s := t.Stats()
			out[name] = server.ExportStats{Exported: s.Exported, Dropped: s.Dropped, Lag: s.Lag, Failing: s.Failing}
		}
		return out
	})
	return nil
}

func newSink(s config.ExportSink) (export.Sink, error) {
	switch s.Type {
	case "jsonl":
		maxFiles := s.MaxFiles
		if maxFiles == 0 {
			maxFiles = 5
		}
		return export.NewJSONL(s.Path, s.MaxBytes, maxFiles, os.Stdout)
	case "otlp":
		headers := http.Header{}
		for h, env := range s.HeadersEnv {
			v := os.Getenv(env)
			if v == "" {
				// A receiver that refuses every batch would only drop records: refused at start.
				return nil, fmt.Errorf("headers_env.%s: the environment variable %s is not set", h, env)
			}
			headers.Set(h, v)
		}
		return export.NewOTLP(s.Endpoint, s.ServiceName, headers), nil
	}
	return nil, fmt.Errorf("unknown sink type %q", s.Type)
}
