package httpsig

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTransportSignsWhatItSends(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var nonces []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		res, err := Verify(r, body, VerifyOptions{Now: time.Now(), MaxAge: time.Minute, MaxSkew: time.Second, RequireNonce: true},
			func(string) (ed25519.PublicKey, error) { return f.pub, nil })
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		nonces = append(nonces, res.Nonce)
		mu.Unlock()
		w.Write(body)
	}))
	defer srv.Close()
	c := &http.Client{Transport: &Transport{Signer: &Signer{KeyID: "k1", Key: f.priv}}}
	for _, body := range []string{`{"tool":"fetch_sales_data"}`, `{"tool":"fetch_sales_data"}`} {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/decide?x=1", strings.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != body {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
		if req.Header.Get("Signature") != "" {
			t.Error("the caller's request was modified")
		}
	}
	resp, err := c.Get(srv.URL + "/healthz") // no body
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	if len(nonces) != 3 || nonces[0] == nonces[1] {
		t.Errorf("nonces = %v: each request needs a fresh one", nonces)
	}
}
