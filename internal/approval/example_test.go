package approval_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/approval"
)

// A receiver verifies each notification before trusting it: read the raw body, check the
// X-Portcullis-Signature header with the shared secret, and only then parse the JSON. This is
// the example docs/approvals.md quotes.
func ExampleVerifyWebhook() {
	secret := []byte("a shared secret of at least 32 bytes!!")

	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusBadRequest)
			return
		}
		err = approval.VerifyWebhook(secret, r.Header.Get(approval.SignatureHeader), body, time.Now(), 5*time.Minute)
		if err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "verified")
	})

	// What the gateway sends: a body and its signature.
	body := []byte(`{"text":"Approval needed: ..."}`)
	good := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(string(body)))
	good.Header.Set(approval.SignatureHeader, approval.SignWebhook(secret, body, time.Now()))
	rec := httptest.NewRecorder()
	receiver.ServeHTTP(rec, good)
	fmt.Println(rec.Code, rec.Body.String())

	// A forged or altered body fails.
	forged := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(`{"text":"Approved!"}`))
	forged.Header.Set(approval.SignatureHeader, good.Header.Get(approval.SignatureHeader))
	rec = httptest.NewRecorder()
	receiver.ServeHTTP(rec, forged)
	fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	// Output:
	// 200 verified
	// 401 invalid signature
}
