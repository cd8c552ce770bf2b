package inspect

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Test credentials are assembled from pieces so that no complete token literal sits in the source
// (secret scanners would flag the repository) — and none of them is real.
func fakeToken(prefix string, n int, alphabet string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i := 0; i < n; i++ {
		b.WriteByte(alphabet[(i*7+3)%len(alphabet)])
	}
	return b.String()
}

const alnum = "aB3dE5fG7hJ9kLmN2pQ4rS6tUvWxYz8C"

func fakeJWT() string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte(`{"sub":"42","name":"test"}`)) + "." + fakeToken("", 43, alnum)
}

func TestSecretDetector(t *testing.T) {
	high := func(k string) []kindLevel { return []kindLevel{{k, threat.High}} }
	pem := "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----"
	tests := []struct {
		name, key, raw string
		want           []kindLevel
	}{
		{"aws key id", "body", "creds: " + fakeToken("AKIA", 16, "ABCDEFGHJKLMNPQRSTUVWXYZ234567"), high(KindSecretAWS)},
		{"github pat", "body", "use " + fakeToken("ghp_", 36, alnum) + " to push", high(KindSecretGitHub)},
		{"slack bot", "text", fakeToken("xoxb-", 40, "0123456789-abcdefXYZ"), high(KindSecretSlack)},
		{"pem key", "file", pem, high(KindSecretPrivateKey)},
		{"base64 pem key", "blob", base64.StdEncoding.EncodeToString([]byte(pem)), high(KindSecretPrivateKey)},
		{"jwt", "header", "Bearer " + fakeJWT(), high(KindSecretJWT)},
		{"jwt-shaped without alg", "text", "eyJub3RhIjoiand0In0.eyJzdWIiOiIxIn0.abc", nil},
		{"google api key", "url", "https://maps.example/api?key=" + fakeToken("AIza", 35, alnum), high(KindSecretGCP)},
		{"stripe live", "cfg", fakeToken("sk_live_", 24, alnum), high(KindSecretStripe)},
		{"stripe test is medium", "cfg", fakeToken("sk_test_", 24, alnum), []kindLevel{{KindSecretStripe, threat.Medium}}},
		{"anthropic", "env", fakeToken("sk-ant-api03-", 90, alnum+"_-"), high(KindSecretAnthropic)},
		{"openai project", "env", fakeToken("sk-proj-", 60, alnum), high(KindSecretOpenAI)},
		{"db url credentials", "dsn", "postgres://app:" + fakeToken("", 14, alnum) + "@db.internal:5432/app", high(KindSecretURL)},
		{"generic high entropy", "config", "API_TOKEN=" + fakeToken("", 32, alnum+"+/"), high(KindSecretGeneric)},
		{"password literal", "code", `db_password = "h0rse-Battery"`, high(KindSecretGeneric)},
		{"password from env", "code", `password = os.environ["DB_PASSWORD"]`, nil},
		{"password variable", "code", `password = request.form.get("pw")`, nil},
		{"placeholder", "code", `api_key = "<your-api-key>"`, nil},
		{"credential parameter is low", "password", "Tr0ub4dor&3x", []kindLevel{{KindSecretGeneric, threat.Low}}},
		{"uuid is not a secret", "id", "3f2b8c1e-9a4d-4e6f-8b2a-1c3d5e7f9a0b", nil},
		{"git sha is not a secret", "commit", "9fceb02d0ae598e95dc970b74767f19372d61af8", nil},
		{"prose", "text", "The token ring network used a password-less login.", nil},
		// Documentation samples and placeholders stand for a key; a system prompt or a README that
		// quotes them must not be refused as leaking one.
		{"aws documented sample key id", "prompt", "e.g. " + "AKIA" + "IOSFODNN7" + "EXAMPLE", nil},
		{"aws documented sample secret", "prompt", "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY", nil},
		{"aws sample key id with the session prefix", "prompt", "ASIA" + "IOSFODNN7" + "EXAMPLE", nil},
		{"openai placeholder run", "prompt", "export OPENAI_API_KEY=sk-" + strings.Repeat("X", 48), nil},
		{"openai project placeholder tail", "prompt", "sk-proj-" + fakeToken("", 16, alnum) + "XXXX" + fakeToken("", 8, alnum), nil},
		{"openai lowercase placeholder run", "prompt", "sk-proj-" + strings.Repeat("x", 40), nil},
		{"github zero run", "prompt", "ghp_" + strings.Repeat("0", 36), nil},
		{"stripe placeholder", "prompt", "sk_live_" + "<YOUR_KEY>" + fakeToken("", 20, alnum), nil},
		{"a real-shaped key beside a sample is still found", "prompt", "AKIA" + "IOSFODNN7" + "EXAMPLE or " + fakeToken("AKIA", 16, "ABCDEFGHJKLMNPQRSTUVWXYZ234567"), high(KindSecretAWS)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspectOne(secretDetector{}, "send", tt.key, tt.raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestSecretEvidenceRedacted(t *testing.T) {
	tok := fakeToken("ghp_", 36, alnum)
	v := testValue("$.t", "t", "token "+tok)
	secretDetector{}.Inspect(&Call{}, &v, func(f Finding) {
		if strings.Contains(f.Evidence, tok[4:36]) || !strings.Contains(f.Evidence, "(40 chars)") {
			t.Errorf("evidence leaks the secret: %q", f.Evidence)
		}
	})
}

func TestShannon(t *testing.T) {
	if got := shannon("aaaa"); got != 0 {
		t.Errorf("shannon(aaaa) = %v", got)
	}
	if got := shannon("abcd"); got != 2 {
		t.Errorf("shannon(abcd) = %v", got)
	}
}

func FuzzSecretDetector(f *testing.F) {
	for _, s := range []string{"AKIA", "eyJhbGciOiJub25lIn0.e30.", "-----BEGIN ", "password=", "://a:b@c", "Bearer x", "-p x"} {
		f.Add("k", s)
	}
	f.Fuzz(func(t *testing.T, key, raw string) {
		v := testValue("$.k", key, raw)
		secretDetector{}.Inspect(&Call{}, &v, func(fd Finding) {
			if !strings.HasPrefix(fd.Kind, "secret.") || fd.Score <= 0 || fd.Score > 1 || strings.Contains(fd.Evidence, raw) && len(raw) > 12 {
				t.Fatalf("bad finding %+v", fd)
			}
		})
	})
}

func BenchmarkSecrets(b *testing.B) { benchDetector(b, secretDetector{}) }

// FuzzTripleFilter checks that tripleFilter never rejects the start of a string added to it, nor
// secretTriples a secret prefix, whatever follows it.
func FuzzTripleFilter(f *testing.F) {
	f.Add("ghp_x", byte('a'))
	f.Add("SK", byte(0))
	f.Fuzz(func(t *testing.T, s string, c byte) {
		for _, r := range secretRules {
			for _, p := range r.prefixes {
				third := c
				if len(p) > 2 {
					third = p[2]
				}
				if !secretTriples.has(p[0], p[1], third) {
					t.Fatalf("secretTriples rejects the prefix %q", p)
				}
			}
		}
		if len(s) >= 2 {
			var g tripleFilter
			g.add(s)
			third := c
			if len(s) > 2 {
				third = s[2]
			}
			if !g.has(s[0], s[1], third) {
				t.Fatalf("tripleFilter rejects %q just added", s)
			}
		}
	})
}
