package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if got := run([]string{srv.URL + "/readyz"}, io.Discard); got != 0 {
		t.Errorf("ready gateway: exit %d, want 0", got)
	}
	status = http.StatusServiceUnavailable
	if got := run([]string{srv.URL + "/readyz"}, io.Discard); got != 1 {
		t.Errorf("503: exit %d, want 1", got)
	}
	status = http.StatusOK
	if got := run([]string{"-timeout", "50ms", srv.URL + "/slow"}, io.Discard); got != 1 {
		t.Errorf("no answer within the timeout: exit %d, want 1", got)
	}
	srv.Close()
	if got := run([]string{srv.URL + "/readyz"}, io.Discard); got != 1 {
		t.Errorf("nothing listening: exit %d, want 1", got)
	}
}
