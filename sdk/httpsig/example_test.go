package httpsig_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"time"

	"github.com/portcullis-ai/portcullis/sdk/httpsig"
)

// An orchestrator signs each request to Portcullis with its agent's key.
func ExampleSigner() {
	priv, _, pubBase64, err := httpsig.GenerateKey() // once; put pubBase64 in the agent's signing_keys
	if err != nil {
		panic(err)
	}
	body := []byte(`{"agent_id":"report-generator-v1","tool":"fetch_sales_data","params":{"query_type":"monthly"}}`)
	req, _ := http.NewRequest("POST", "https://portcullis.internal:8080/v1/decide", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")

	signer := &httpsig.Signer{KeyID: "report-generator-2026-11", Key: priv}
	if err := signer.Sign(req, body); err != nil {
		panic(err)
	}
	fmt.Println(req.Header.Get("Content-Digest") != "", req.Header.Get("Signature-Input")[:63])

	// What Portcullis does on arrival (identity.Verifier wraps this with its nonce store):
	res, err := httpsig.Verify(req, body, httpsig.VerifyOptions{Now: time.Now(), MaxAge: 5 * time.Minute, MaxSkew: 30 * time.Second, RequireNonce: true},
		func(keyID string) (ed25519.PublicKey, error) { return priv.Public().(ed25519.PublicKey), nil })
	fmt.Println(err == nil, res.KeyID, pubBase64 != "")
	// Output:
	// true sig=("@method" "@authority" "@path" "@query" "content-digest");
	// true report-generator-2026-11 true
}
