package inspect

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// Secret finding kinds. A credential in a tool call is high severity whatever the tool: it can be
// replayed by whoever reads the other end.
const (
	KindSecretAWS          = "secret.aws_access_key"
	KindSecretGitHub       = "secret.github_token"
	KindSecretSlack        = "secret.slack_token"
	KindSecretPrivateKey   = "secret.private_key"
	KindSecretJWT          = "secret.jwt"
	KindSecretGCP          = "secret.gcp"
	KindSecretStripe       = "secret.stripe"
	KindSecretOpenAI       = "secret.openai"
	KindSecretAnthropic    = "secret.anthropic"
	KindSecretVendor       = "secret.vendor_token"      // other vendors' prefixed tokens (GitLab, npm, PyPI, ...)
	KindSecretURL          = "secret.connection_string" // user:password@ in a URL or connection string
	KindSecretPasswordHash = "secret.password_hash"     // crypt(3)/bcrypt hashes: crackable offline
	KindSecretGeneric      = "secret.generic"
)

// secretDetector finds credentials. Vendor formats are recognised by their fixed prefixes (found
// with plain substring search, then checked with a small anchored pattern), so the cost does not
// grow with the number of rules the way one big alternation would; JWTs must have a header that
// decodes to JSON with "alg". Everything else is secret.generic: an assignment to a credential-
// named key (password = ..., "api_key": ...) whose value is a literal with enough Shannon entropy
// to be a real credential rather than a placeholder or a variable.
//
// Evidence is redacted to the first and last two characters and the length.
type secretDetector struct{}

var _ Detector = secretDetector{}

func (secretDetector) Name() string { return "secrets" }

type secretRule struct {
	prefixes []string
	kind     string
	re       *lazyRE // anchored at the prefix's position; the match is the secret
	sev      threat.Level
	what     string
	check    func(string) bool
	back     *lazyRE // when set, must match the text right before the prefix (ends in $)
}

var secretRules = []secretRule{
	{[]string{"AKIA", "ASIA", "ABIA", "ACCA"}, KindSecretAWS, lazyRegexp(`^A[KSBC][IC]A[0-9A-Z]{16}\b`), threat.High, "AWS access key ID", nil, nil},
	{[]string{"aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "SecretAccessKey", "aws_secret_key"}, KindSecretAWS, lazyRegexp(`^(?i:aws_secret_access_key|secretaccesskey|aws_secret_key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})\b`), threat.High, "AWS secret access key", nil, nil},
	{[]string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, KindSecretGitHub, lazyRegexp(`^gh[pousr]_[A-Za-z0-9]{36,251}\b`), threat.High, "GitHub token", nil, nil},
	{[]string{"github_pat_"}, KindSecretGitHub, lazyRegexp(`^github_pat_[A-Za-z0-9_]{50,}`), threat.High, "GitHub fine-grained token", nil, nil},
	{[]string{"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xoxe.", "xapp-"}, KindSecretSlack, lazyRegexp(`^xox[bpaerse][.-][A-Za-z0-9-]{10,}|^xapp-\d-[A-Za-z0-9-]{10,}`), threat.High, "Slack token", nil, nil},
	{[]string{"hooks.slack.com/"}, KindSecretSlack, lazyRegexp(`^hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,}`), threat.High, "Slack webhook", nil, nil},
	{[]string{"-----BEGIN "}, KindSecretPrivateKey, lazyRegexp(`^-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----`), threat.High, "PEM private key", nil, nil},
	{[]string{"PuTTY-User-Key-File-"}, KindSecretPrivateKey, lazyRegexp(`^PuTTY-User-Key-File-\d`), threat.High, "PuTTY private key", nil, nil},
	{[]string{"AGE-SECRET-KEY-1"}, KindSecretPrivateKey, lazyRegexp(`^AGE-SECRET-KEY-1[0-9A-Z]{58}`), threat.High, "age identity", nil, nil},
	{[]string{"eyJ"}, KindSecretJWT, lazyRegexp(`^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`), threat.High, "JSON Web Token", validJWT, nil},
	{[]string{"AIza"}, KindSecretGCP, lazyRegexp(`^AIza[0-9A-Za-z_-]{35}`), threat.High, "Google API key", nil, nil},
	{[]string{"ya29."}, KindSecretGCP, lazyRegexp(`^ya29\.[0-9A-Za-z_-]{20,}`), threat.High, "Google OAuth access token", nil, nil},
	{[]string{"GOCSPX-"}, KindSecretGCP, lazyRegexp(`^GOCSPX-[0-9A-Za-z_-]{28}`), threat.High, "Google OAuth client secret", nil, nil},
	{[]string{"service_account"}, KindSecretGCP, lazyRegexp(`^service_account"[\s\S]{0,1000}"private_key"\s*:\s*"-----BEGIN`), threat.High, "GCP service-account key", nil, nil},
	{[]string{"sk_live_", "rk_live_"}, KindSecretStripe, lazyRegexp(`^[sr]k_live_[0-9A-Za-z]{16,}`), threat.High, "Stripe live key", nil, nil},
	{[]string{"sk_test_", "rk_test_"}, KindSecretStripe, lazyRegexp(`^[sr]k_test_[0-9A-Za-z]{16,}`), threat.Medium, "Stripe test key", nil, nil},
	{[]string{"sk-ant-"}, KindSecretAnthropic, lazyRegexp(`^sk-ant-(?:api|admin|sid)\d\d-[A-Za-z0-9_-]{32,}`), threat.High, "Anthropic API key", nil, nil},
	{[]string{"sk-"}, KindSecretOpenAI, lazyRegexp(`^sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48}\b)`), threat.High, "OpenAI API key", nil, nil},
	// Other vendors whose tokens carry a fixed, unambiguous prefix.
	{[]string{"glpat-", "glptt-", "glrt-", "GR1348941"}, KindSecretVendor, lazyRegexp(`^(?:glpat-|glptt-|glrt-|GR1348941)[0-9A-Za-z_-]{20,}`), threat.High, "GitLab token", nil, nil},
	{[]string{"npm_"}, KindSecretVendor, lazyRegexp(`^npm_[A-Za-z0-9]{36}\b`), threat.High, "npm token", nil, nil},
	{[]string{"pypi-AgE"}, KindSecretVendor, lazyRegexp(`^pypi-AgE[A-Za-z0-9_-]{50,}`), threat.High, "PyPI token", nil, nil},
	{[]string{"hf_"}, KindSecretVendor, lazyRegexp(`^hf_[A-Za-z]{34}\b`), threat.High, "Hugging Face token", nil, nil},
	{[]string{"SG."}, KindSecretVendor, lazyRegexp(`^SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}`), threat.High, "SendGrid key", nil, nil},
	{[]string{"shpat_", "shpss_", "shpca_", "shppa_"}, KindSecretVendor, lazyRegexp(`^shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}`), threat.High, "Shopify token", nil, nil},
	{[]string{"dop_v1_", "doo_v1_", "dor_v1_"}, KindSecretVendor, lazyRegexp(`^do[opr]_v1_[a-f0-9]{64}`), threat.High, "DigitalOcean token", nil, nil},
	{[]string{"dp.st.", "dp.pt.", "dp.ct.", "dp.scim.", "dp.audit.", "dp.sa."}, KindSecretVendor, lazyRegexp(`^dp\.(?:st|pt|ct|scim|audit|sa)\.[A-Za-z0-9._-]{40,}`), threat.High, "Doppler token", nil, nil},
	{[]string{"dapi"}, KindSecretVendor, lazyRegexp(`^dapi[a-f0-9]{32}(?:-\d)?\b`), threat.High, "Databricks token", nil, nil},
	{[]string{"dckr_pat_"}, KindSecretVendor, lazyRegexp(`^dckr_pat_[A-Za-z0-9_-]{27}`), threat.High, "Docker Hub token", nil, nil},
	{[]string{"glsa_", "glc_"}, KindSecretVendor, lazyRegexp(`^(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})`), threat.High, "Grafana token", nil, nil},
	{[]string{"hvs.", "hvb.", "hvr."}, KindSecretVendor, lazyRegexp(`^hv[sbr]\.[A-Za-z0-9_-]{24,}`), threat.High, "Vault token", nil, nil},
	{[]string{"NRAK-", "NRII-", "NRAA-", "NRJS-"}, KindSecretVendor, lazyRegexp(`^NR(?:AK|II|AA|JS)-[A-Za-z0-9]{20,}`), threat.High, "New Relic key", nil, nil},
	{[]string{"sq0atp-", "sq0csp-", "EAAA"}, KindSecretVendor, lazyRegexp(`^(?:sq0atp-[0-9A-Za-z_-]{22}|sq0csp-[0-9A-Za-z_-]{43}|EAAA[0-9A-Za-z_-]{60})`), threat.High, "Square token", nil, nil},
	{[]string{"figd_"}, KindSecretVendor, lazyRegexp(`^figd_[A-Za-z0-9_-]{40}`), threat.High, "Figma token", nil, nil},
	{[]string{"tvly-"}, KindSecretVendor, lazyRegexp(`^tvly-(?:dev-|prod-)?[A-Za-z0-9]{32}`), threat.High, "Tavily key", nil, nil},
	{[]string{"gsk_"}, KindSecretVendor, lazyRegexp(`^gsk_[A-Za-z0-9]{52}`), threat.High, "Groq key", nil, nil},
	{[]string{"ATATT3"}, KindSecretVendor, lazyRegexp(`^ATATT3[A-Za-z0-9_=-]{100,}`), threat.High, "Atlassian token", nil, nil},
	{[]string{"sgp_", "sgph_"}, KindSecretVendor, lazyRegexp(`^sgph?_[a-f0-9]{16}_[a-f0-9]{40}|^sgp_[a-f0-9]{40}`), threat.High, "Sourcegraph token", nil, nil},
	{[]string{"rubygems_"}, KindSecretVendor, lazyRegexp(`^rubygems_[a-f0-9]{48}`), threat.High, "RubyGems key", nil, nil},
	{[]string{"cio"}, KindSecretVendor, lazyRegexp(`^cio[A-Za-z0-9]{32}\b`), threat.High, "crates.io token", nil, nil},
	{[]string{"PMAK-"}, KindSecretVendor, lazyRegexp(`^PMAK-[a-f0-9]{24}-[a-f0-9]{34}`), threat.High, "Postman key", nil, nil},
	{[]string{"aio_"}, KindSecretVendor, lazyRegexp(`^aio_[A-Za-z0-9]{28}\b`), threat.High, "Adafruit IO key", nil, nil},
	{[]string{"odt_"}, KindSecretVendor, lazyRegexp(`^odt_[A-Za-z0-9]{32,}`), threat.High, "Dependency-Track key", nil, nil},
	{[]string{"jina_"}, KindSecretVendor, lazyRegexp(`^jina_[a-f0-9]{32}[A-Za-z0-9_-]{30}`), threat.High, "Jina key", nil, nil},
	{[]string{"oy2"}, KindSecretVendor, lazyRegexp(`^oy2[a-z0-9]{43}\b`), threat.High, "NuGet key", nil, nil},
	{[]string{"live_"}, KindSecretVendor, lazyRegexp(`^live_\d{6,}_[A-Za-z0-9]{30}\b`), threat.High, "Twitch stream key", nil, nil},
	{[]string{"key-"}, KindSecretVendor, lazyRegexp(`^key-[a-f0-9]{32}\b`), threat.High, "Mailgun key", nil, nil},
	{[]string{"-us"}, KindSecretVendor, lazyRegexp(`^-us\d{1,2}\b`), threat.High, "Mailchimp key", nil, lazyRegexp(`[a-f0-9]{32}$`)},
	{[]string{"NRAL"}, KindSecretVendor, lazyRegexp(`^NRAL\b`), threat.High, "New Relic license key", nil, lazyRegexp(`\b[a-z0-9]{36}$`)},
	{[]string{"NRIQ-", "NRIK-", "NRRA-"}, KindSecretVendor, lazyRegexp(`^NR(?:IQ|IK|RA)-[A-Za-z0-9_-]{27,}`), threat.High, "New Relic key", nil, nil},
	{[]string{"sgp_local_"}, KindSecretVendor, lazyRegexp(`^sgp_local_[a-f0-9]{40}`), threat.High, "Sourcegraph token", nil, nil},
	{[]string{"SK"}, KindSecretVendor, lazyRegexp(`^SK[a-f0-9]{32}\b`), threat.High, "Twilio API key", nil, nil},
	{[]string{"eyJrIjoi"}, KindSecretVendor, lazyRegexp(`^eyJrIjoi[A-Za-z0-9+/_-]{40,}={0,2}`), threat.High, "Grafana API key", nil, nil},
	{[]string{"webhook.office.com/", "outlook.office.com/webhook/"}, KindSecretVendor, lazyRegexp(`^(?:[a-z0-9-]+\.)?(?:webhook\.office\.com/webhookb2|outlook\.office\.com/webhook)/[A-Za-z0-9@/-]{60,}`), threat.High, "Microsoft Teams webhook", nil, nil},
	{[]string{":AA"}, KindSecretVendor, lazyRegexp(`^:AA[A-Za-z0-9_-]{32,33}\b`), threat.High, "Telegram bot token", nil, lazyRegexp(`\b\d{8,10}$`)},
	{[]string{"00D"}, KindSecretVendor, lazyRegexp(`^00D[A-Za-z0-9]{12}![A-Za-z0-9._]{80,}`), threat.High, "Salesforce token", nil, nil},
	{[]string{"AccountKey=", "SharedAccessKey=", "accountkey="}, KindSecretURL, lazyRegexp(`^(?i:accountkey|sharedaccesskey)=([A-Za-z0-9+/]{30,}={0,2})`), threat.High, "Azure storage key", nil, nil},
	{[]string{"Password=", "password=", "PASSWORD=", "Pwd=", "pwd=", "PWD=", "Password =", "password ="}, KindSecretURL, lazyRegexp(`^(?i:password|pwd)\s*=\s*([^;'"\s]{3,64});`), threat.High, "password in connection string", connPasswordReal, nil},
	{[]string{"machine "}, KindSecretGeneric, lazyRegexp(`^machine\s+\S+\s+login\s+\S+\s+password\s+(\S{4,})`), threat.High, "netrc password", nil, nil},
	{[]string{"Bearer ", "bearer ", "Basic ", "SSWS ", "Token ", "token "}, KindSecretGeneric, lazyRegexp(`^(?:[Bb]earer|Basic|SSWS|[Tt]oken)\s+([A-Za-z0-9._~+/-]{16,}=*)`), threat.High, "authorization header credential", authHeaderReal, nil},
	{[]string{"-Password ", "-password ", "-p "}, KindSecretGeneric, lazyRegexp(`^-(?:[Pp]assword|p)\s+([^\s$%"'-][^\s"']{3,})`), threat.High, "password on a command line", cliPasswordReal, nil},
	{[]string{"://"}, KindSecretURL, lazyRegexp(`^://[^/\s:@"'<>]{1,64}:([^/\s@"'<>]{3,128})@[A-Za-z0-9.-]`), threat.High, "credentials in URL", urlPasswordReal, nil},
	{[]string{"$2a$", "$2b$", "$2y$", "$1$", "$5$", "$6$", "$krb5asrep$", "$8$", "$9$"}, KindSecretPasswordHash, lazyRegexp(`^\$(?:2[aby]\$\d\d\$[./A-Za-z0-9]{53}|1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22}|[56]\$(?:rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43,86}|krb5asrep\$23\$[^\s]{40,}|[89]\$[./A-Za-z0-9]{14}\$[./A-Za-z0-9]{43})`), threat.Medium, "password hash", nil, nil},
}

// secretGeneric matches an assignment to a credential-named key: password = "...", "api_key": "...",
// token => '...', secret: ... The name may be part of a longer identifier (db_password, CLIENT_SECRET).
var secretGeneric = lazyRegexp(`(?i)([a-z0-9_.-]*(?:passw(?:or)?d|passwd|pwd|pass\b|secret|token|api|key|auth|credential|login)[a-z0-9_]*)["']?\s*(?::=|=>|==|!=|[:=]|\s(?:['"]))\s*("[^"\n]{4,200}"|'[^'\n]{4,200}'|[^\s"',;&)]{6,200})`)

// maxSecretScan bounds the bytes scanned per value.
const maxSecretScan = 256 << 10

// secretEmit reports a match: its kind, severity, score, what it is, the secret text (for the
// redacted evidence) and where the secret lies in the scanned text (start < 0: not located).
type secretEmit func(kind string, sev threat.Level, score float64, what, secret string, start, end int)

// secretHit gathers the matches of one kind in one value: one finding, every located span.
type secretHit struct {
	f     Finding
	whole bool // some match was not located in the value's text
}

func (secretDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	var hits []secretHit // one per kind, in the order first seen
	seen := func(kind string) *secretHit {
		for i := range hits {
			if hits[i].f.Kind == kind {
				return &hits[i]
			}
		}
		return nil
	}
	// Spans are kept only for matches in the text as received; a secret found in a decoded layer,
	// in an object key or past the scanned prefix cannot be cut out of the value, so the whole
	// value is redacted.
	locatable := !v.IsKey && len(v.Raw) <= maxSecretScan
	emit := func(kind string, sev threat.Level, score float64, what, secret string, start, end int) {
		h := seen(kind)
		if h == nil {
			hits = append(hits, secretHit{f: Finding{Kind: kind, Severity: sev, Path: v.Path, Evidence: what + " " + redact(secret), Score: score}})
			h = &hits[len(hits)-1]
		}
		if start < 0 || !locatable {
			h.whole = true
			return
		}
		h.f.Spans = append(h.f.Spans, Span{start, end})
	}
	scan := func(s string, located bool) {
		if len(s) > maxSecretScan {
			s = s[:maxSecretScan]
		}
		emitHere := emit
		if !located {
			emitHere = func(kind string, sev threat.Level, score float64, what, secret string, _, _ int) {
				emit(kind, sev, score, what, secret, -1, -1)
			}
		}
		// One pass over the text; at each byte only the prefixes starting with it (and the next
		// two) are tried. Kinds already found are tried again, so that every occurrence in the
		// text as received is located, and one in a decoded layer makes the value whole.
		tries := 0
		try := func(i int) {
			for _, sp := range secretIndex[s[i]] {
				r := &secretRules[sp.rule]
				if !strings.HasPrefix(s[i:], sp.prefix) {
					continue
				}
				if tries++; tries > 256 {
					// Bounded work per value: what was found may not be all there is.
					for j := range hits {
						hits[j].whole = true
					}
					break
				}
				secretAt(s, i, sp.prefix, r, emitHere)
			}
		}
		f := secretTriples
		// This loop runs over every value: it reads the pairs at even offsets only. A prefix
		// starting at an even i shows its first two bytes there, one at an odd i its second
		// and third (secretSkip holds both), so every offset whose triple may start a prefix is
		// tried, in order, with the full test.
		// k is the pair's second byte: indexing by it leaves the compiler no bounds to check.
		for k := 1; k < len(s); k += 2 {
			if p := uint32(s[k-1])<<8 | uint32(s[k]); secretSkip[p>>6&1023]&(1<<(p&63)) == 0 {
				continue
			}
			j := k - 1
			if j > 0 && f.has(s[j-1], s[j], s[j+1]) {
				try(j - 1)
			}
			if j+2 < len(s) && f.has(s[j], s[j+1], s[j+2]) {
				try(j)
			}
		}
		// The last pair: only a two-byte prefix fits there.
		if i := len(s) - 2; i >= 0 && f.has(s[i], s[i+1], 0) {
			try(i)
		}
		if len(hits) == 0 {
			// (a recognised format already explains the assignment; without ':' or '=' there is none)
			if v.readingChars(s).any(secretAssignChars) {
				scanGenericSecrets(s, v.Key, emitHere)
			}
		}
	}
	scan(v.Raw, true)
	// Base64 layers the engine decoded (a PEM key wrapped in base64, a token in a data: URL). Norm
	// is lower-cased and useless for case-sensitive formats, so only decoded layers are scanned.
	for i, d := range v.Decoded {
		if i < len(v.DecodedFrom) && v.DecodedFrom[i] == LayerBase64 || strings.Contains(d, "private key") {
			scan(d, false)
			if strings.Contains(d, "-----begin ") && strings.Contains(d, "private key-----") {
				emit(KindSecretPrivateKey, threat.High, 0.9, "encoded PEM private key", d[strings.Index(d, "-----begin "):], -1, -1)
			}
		}
	}
	// A credential-named parameter holding a credential-looking value: {"password": "..."}. That is
	// the parameter's purpose — a login tool takes a password — so it is recorded (policies can
	// restrict which tools receive credentials) but not alarming on its own. The whole value is
	// the credential.
	if v.keyIs(factSecretKey, secretKeyName) && !v.IsKey && len(v.Raw) >= 8 && len(v.Raw) <= 512 && !cs0.in(v.Raw) &&
		looksRandom(v.Raw, 2.5) && !secretPlaceholder(v.Raw) {
		emit(KindSecretGeneric, threat.Low, 0.5, "credential in parameter "+v.Key, v.Raw, -1, -1)
	}
	for _, h := range hits {
		if h.whole {
			h.f.Spans = nil
		} else {
			h.f.TextLen = len(v.Raw)
		}
		report(h.f)
	}
}

// secretPrefix is one literal prefix of a rule, indexed by its first byte.
type secretPrefix struct {
	prefix string
	rule   int
}

var secretIndex = func() (idx [256][]secretPrefix) {
	for i, r := range secretRules {
		for _, p := range r.prefixes {
			idx[p[0]] = append(idx[p[0]], secretPrefix{p, i})
		}
	}
	return idx
}()

// secretTriples marks the first three bytes of every prefix, so that most positions of a text
// are rejected with two bit tests. Prose is full of the first two bytes of some prefix ("sk" in
// "task", "se" in "service", "fi" in "file"); far fewer positions also match the third.
var secretTriples = func() *tripleFilter {
	var f tripleFilter
	for _, r := range secretRules {
		for _, p := range r.prefixes {
			f.add(p)
		}
	}
	return &f
}()

// secretSkip is a bitmap of byte pairs: the first two bytes of every prefix, and its second and
// third (any pair starting with the second byte of a two-byte prefix). A pair at an even offset
// outside it rules out prefixes starting there and one byte before. An array, not a pointer to
// one: the scan reads it at every pair, and a pointer is one more load and nil check there.
var secretSkip = func() (m [1024]uint64) {
	set := func(a, b byte) {
		p := uint32(a)<<8 | uint32(b)
		m[p>>6] |= 1 << (p & 63)
	}
	for _, r := range secretRules {
		for _, p := range r.prefixes {
			set(p[0], p[1])
			if len(p) == 2 {
				for c := 0; c < 256; c++ {
					set(p[1], byte(c))
				}
			} else {
				set(p[1], p[2])
			}
		}
	}
	return m
}()

// tripleFilter is a set of strings' first three bytes, with false positives: a bitmap of their
// first two bytes, then a bitmap of a hash of all three (8 KiB each, small enough to stay in the L1
// cache). A two-byte string passes with any third byte.
type tripleFilter struct {
	pairs, short, triples [1024]uint64
}

func tripleHash(a, b, c byte) uint32 {
	return (uint32(a)<<16 | uint32(b)<<8 | uint32(c)) * 2654435761 >> 16
}

// add adds s, which has at least two bytes.
func (f *tripleFilter) add(s string) {
	p := uint32(s[0])<<8 | uint32(s[1])
	f.pairs[p>>6] |= 1 << (p & 63)
	if len(s) == 2 {
		f.short[p>>6] |= 1 << (p & 63)
		return
	}
	h := tripleHash(s[0], s[1], s[2])
	f.triples[h>>6] |= 1 << (h & 63)
}

// has reports whether abc may be in the set (false: it certainly is not).
func (f *tripleFilter) has(a, b, c byte) bool {
	p := uint32(a)<<8 | uint32(b)
	if f.pairs[p>>6]&(1<<(p&63)) == 0 {
		return false
	}
	if f.short[p>>6]&(1<<(p&63)) != 0 {
		return true
	}
	h := tripleHash(a, b, c)
	return f.triples[h>>6]&(1<<(h&63)) != 0
}

// secretAt checks rule r at offset i of s, where prefix p occurs, and reports a match.
func secretAt(s string, i int, p string, r *secretRule, emit secretEmit) bool {
	var before string
	if r.back != nil {
		lo := max(0, i-64)
		if before = r.back.FindString(s[lo:i]); before == "" {
			return false
		}
	} else if p != "://" && p != "hooks.slack.com/" && p != "service_account" && p[0] != '-' && p[0] != ' ' && i > 0 && isAlnum(s[i-1]) {
		return false // tokens start at a word boundary
	}
	end := min(i+1200, len(s)) // the longest pattern (a service-account key) fits; bounds regexp work
	m := r.re.FindStringSubmatchIndex(s[i:end])
	if m == nil {
		return false
	}
	// The secret is the match with the text the look-behind required, or the first group when
	// the rule captures one (the password of a connection string, not its key name).
	start, stop := i+m[0]-len(before), i+m[1]
	if len(m) > 2 && m[2] >= 0 && m[3] > m[2] {
		start, stop = i+m[2], i+m[3]
	}
	if documentationSample(s[start:stop]) {
		return false
	}
	if r.check != nil {
		last := ""
		if g := len(m) - 2; m[g] >= 0 {
			last = s[i+m[g] : i+m[g+1]]
		}
		if !r.check(last) {
			return false
		}
	}
	emit(r.kind, r.sev, 0.9, r.what, s[start:stop], start, stop)
	return true
}

// validJWT checks that the first part of a JWT-shaped string is a JSON header with "alg".
func validJWT(tok string) bool {
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	if err != nil {
		return false
	}
	var hdr map[string]any
	if json.Unmarshal(b, &hdr) != nil {
		return false
	}
	_, ok := hdr["alg"]
	return ok
}

// authHeaderReal accepts an Authorization credential that looks generated.
func authHeaderReal(tok string) bool {
	if strings.HasPrefix(tok, "eyJ") && validJWT(tok) {
		return false // reported as secret.jwt
	}
	return !secretPlaceholder(tok) && (looksRandom(tok, 3.0) || len(tok) >= 24)
}

// cliPasswordReal accepts a -p/-password argument that is a literal, not a variable.
func cliPasswordReal(pw string) bool {
	return !secretPlaceholder(pw) && !cs1.in(pw[:1]) && len(pw) >= 4
}

// connPasswordReal accepts a connection-string password that is a literal.
func connPasswordReal(pw string) bool {
	return !secretPlaceholder(pw) && !cs2.in(pw[:1])
}

// urlPasswordReal rejects template and placeholder passwords in URLs (user:${PASS}@, user:****@).
func urlPasswordReal(pw string) bool {
	return !secretPlaceholder(pw) && !strings.HasPrefix(pw, "$") && !strings.HasPrefix(pw, "%") && !strings.HasPrefix(pw, "{")
}

// secretKeywords are the name fragments secretGeneric needs; the regexp runs only in windows
// around them, so ordinary text costs a few substring searches.
var secretKeywords = []string{"pass", "pwd", "secret", "token", "api", "key", "auth", "credential", "login"}

// secretAssignChars is cs3, the bytes scanGenericSecrets needs, as a charSet.
var secretAssignChars = charsIn("=:")

func scanGenericSecrets(s, key string, emit secretEmit) {
	if !cs3.in(s) {
		return
	}
	lower := lowerASCII(s)
	windows := 0
	covered := -1
	for _, kw := range secretKeywords {
		for off := 0; off < len(lower) && windows < 8; {
			i := strings.Index(lower[off:], kw)
			if i < 0 {
				break
			}
			i += off
			off = i + len(kw)
			if i < covered {
				continue
			}
			// The keyword must end an identifier that is being assigned to.
			j := i + len(kw)
			for j < len(lower) && (isAlnum(lower[j]) || lower[j] == '_' || lower[j] == '-' || lower[j] == '.') {
				j++
			}
			q := j
			for q < len(lower) && q < j+4 && (lower[q] == ' ' || lower[q] == '\t' || lower[q] == '"' || lower[q] == '\'') {
				q++
			}
			if q >= len(lower) || !(lower[q] == '=' || lower[q] == ':' || lower[q] == '!' || q > j && (lower[q-1] == '\'' || lower[q-1] == '"') && (kw == "pass" || kw == "pwd")) {
				continue
			}
			lo := i
			for lo > 0 && i-lo < 64 && (isAlnum(s[lo-1]) || s[lo-1] == '_' || s[lo-1] == '-' || s[lo-1] == '.') {
				lo--
			}
			hi := min(len(s), q+260)
			windows++
			covered = hi
			if scanGenericWindow(s[lo:hi], lo, emit) {
				return
			}
		}
	}
}

// scanGenericWindow scans s, which starts at offset base of the value's text.
func scanGenericWindow(s string, base int, emit secretEmit) bool {
	for _, ix := range secretGeneric.FindAllStringSubmatchIndex(s, 8) {
		name, val := s[ix[2]:ix[3]], s[ix[4]:ix[5]]
		op := s[ix[3]:ix[4]]
		vs, ve := base+ix[4], base+ix[5]
		quoted := val[0] == '"' || val[0] == '\''
		if quoted {
			val = val[1 : len(val)-1]
			vs, ve = vs+1, ve-1
		}
		lname := strings.ToLower(name)
		if val == "" || secretPlaceholder(val) || cs4.in(val[:1]) || strings.HasSuffix(lname, "_id") || strings.HasSuffix(lname, "id") ||
			strings.Contains(lname, "token_type") || strings.HasSuffix(lname, "label") || codeExpression(val) {
			continue
		}
		isPassword := strings.Contains(lname, "pass") || strings.Contains(lname, "pwd")
		if !cs3.in(op) && !isPassword {
			continue // `password 'x'` (Gradle style) is an assignment; `keys 'x'` is prose
		}
		switch {
		case looksRandom(val, 3.5) && len(val) >= 16 && !strings.Contains(val, " "):
			emit(KindSecretGeneric, threat.High, 0.8, "high-entropy "+name, val, vs, ve)
			return true
		case isPassword && len(val) >= 6 && !cs5.in(val) && !strings.Contains(strings.ToLower(val), "pass") && shannon(val) >= 2.5:
			// A password literal: weak passwords are still passwords.
			emit(KindSecretGeneric, threat.High, 0.6, "password literal in "+name, val, vs, ve)
			return true
		}
	}
	return false
}

// codeExpression reports values that are code rather than literals: calls, member access,
// concatenation, URLs and resource names.
func codeExpression(v string) bool {
	if cs6.in(v) || strings.Contains(v, " + ") || strings.Contains(v, "://") || strings.HasPrefix(v, "arn:") {
		return true
	}
	// a.b.c identifiers: request.form, env.DB_PASSWORD
	dots := strings.Count(v, ".")
	if dots == 0 {
		return false
	}
	for _, part := range strings.Split(v, ".") {
		if part == "" || !(isLetter(part[0]) || part[0] == '_') {
			return false
		}
		for i := 0; i < len(part); i++ {
			if !isAlnum(part[i]) && part[i] != '_' {
				return false
			}
		}
	}
	return true
}

// secretKeyWords are the words secretKeyName looks for, matched in one pass.
var secretKeyWords = newLitSet("password", "passwd", "secret", "api_key", "apikey", "api-key", "access_key", "private_key", "auth_token", "access_token", "refresh_token", "bearer", "credential", "client_secret")

// secretKeyName reports whether a parameter name says it holds a credential.
func secretKeyName(k string) bool {
	k = strings.ToLower(k)
	if secretKeyWords.contains(k) {
		return true
	}
	return k == "token" || k == "key" || k == "pwd"
}

// looksRandom reports whether s has at least minBits of Shannon entropy per character and mixes
// character classes the way generated credentials do.
func looksRandom(s string, minBits float64) bool {
	if shannon(s) < minBits {
		return false
	}
	var lower, upperC, digit, other bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upperC = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	classes := 0
	for _, b := range [...]bool{lower, upperC, digit, other} {
		if b {
			classes++
		}
	}
	return classes >= 2
}

// shannon returns the Shannon entropy of s in bits per byte.
func shannon(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// documentationSample reports a vendor-shaped token that stands for a key in documentation rather
// than being one: the samples AWS publishes (AKIAIOSFODNN7EXAMPLE, wJalr…EXAMPLEKEY — every one
// carries EXAMPLE, which 16 random base-32 characters spell with odds near 1e-10), and tokens
// padded with a placeholder run (sk-XXXX…, ghp_0000…, <YOUR_KEY>). A run of four identical X, x or
// 0 occurs in a random 40-character base-62 key about once in 10^5, so recall barely moves while a
// system prompt or README that quotes a sample is no longer refused as leaking a credential.
func documentationSample(tok string) bool {
	if strings.Contains(tok, "EXAMPLE") || strings.Contains(tok, "<") {
		return true
	}
	run, prev := 0, byte(0)
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c != 'X' && c != 'x' && c != '0':
			run = 0
		case c == prev:
			run++
		default:
			run = 1
		}
		prev = c
		if run >= 4 {
			return true
		}
	}
	return false
}

// secretPlaceholder reports values that stand for a secret rather than being one.
func secretPlaceholder(s string) bool {
	l := strings.ToLower(s)
	for _, w := range [...]string{"xxxx", "****", "....", "<", "your", "example", "changeme", "placeholder", "redacted", "dummy", "env.", "process.env", "getenv", "os.environ", "secret_here", "password_here", "${", "{{", "…", "null", "undefined", "none"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}
