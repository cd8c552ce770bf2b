package inspect

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

// ssrfDetector finds server-side request forgery: URLs (or bare hosts in host-like parameters)
// that point at the machine itself, the private network or a cloud metadata service, however the
// address is spelled — decimal (2130706433), octal (0177.0.0.1), hex (0x7f000001), short (127.1),
// IPv6-mapped (::ffff:127.0.0.1), userinfo tricks (http://good.example@127.0.0.1/) — and at
// wildcard-DNS names that resolve there (*.nip.io, localtest.me). Schemes that turn an HTTP
// fetcher into a raw socket (gopher, dict, ...) are findings wherever they point.
//
// With a Resolver configured, other host names are resolved (with a short deadline) and judged by
// their addresses; without one, the detector never touches the network.
type ssrfDetector struct {
	resolver Resolver
}

var _ Detector = ssrfDetector{}

func (ssrfDetector) Name() string { return "ssrf" }

// resolveTimeout bounds one DNS lookup: inspection sits on the request path.
const resolveTimeout = 250 * time.Millisecond

// maxSSRFHosts bounds the URLs examined per value.
const maxSSRFHosts = 16

func (d ssrfDetector) Inspect(c *Call, v *Value, report func(Finding)) {
	if c.Direction != Request {
		return
	}
	hostKey := v.keyIs(factHostKey, isHostKey)
	lookupKey := v.keyIs(factIPLookupKey, ssrfLookupKey)
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	var best Finding
	readings(v, func(r string) bool {
		if v.foldsRaw(r) {
			return true
		}
		if len(r) > 16384 {
			r = r[:16384]
		}
		if !hostKey && !(v.readingChars(r).has(':') && strings.Contains(r, "://")) {
			return true // extractURLs finds nothing without a scheme separator outside a host parameter
		}
		for i, u := range extractURLs(r, hostKey) {
			if i == maxSSRFHosts {
				break
			}
			if f, ok := d.judge(ctx, u, lookupKey); ok && (f.Severity > best.Severity || f.Severity == best.Severity && f.Score > best.Score) {
				best = f
			}
		}
		return best.Severity < threat.Critical
	})
	if best.Score > 0 {
		best.Kind, best.Path = KindSSRF, v.Path
		report(best)
	}
}

type ssrfURL struct {
	scheme string // lower-case, "" for a bare host
	host   string // lower-case, brackets and port removed
	text   string // the URL as written, for evidence
}

// dangerousSchemes turn a URL fetcher into something else: raw TCP (gopher, dict), local files,
// directory or class loading.
var dangerousSchemes = map[string]bool{
	"gopher": true, "dict": true, "file": true, "ldap": true, "ldaps": true, "tftp": true, "jar": true,
	"netdoc": true, "sftp": true, "expect": true, "php": true, "phar": true,
}

func (d ssrfDetector) judge(ctx context.Context, u ssrfURL, lookupKey bool) (Finding, bool) {
	find := func(sev threat.Level, score float64, why string) (Finding, bool) {
		return Finding{Severity: sev, Score: score, Evidence: why + ": " + excerpt(u.text, 0)}, true
	}
	class := classifyHost(u.host)
	if class == "" && d.resolver != nil && u.host != "" && !isIPLiteral(u.host) {
		class = d.resolveClass(ctx, u.host)
	}
	switch {
	case class == "cloud metadata":
		return find(threat.Critical, 0.95, "cloud metadata endpoint")
	case class != "" && dangerousSchemes[u.scheme]:
		return find(threat.Critical, 0.9, u.scheme+":// to "+class+" address")
	case class != "" && u.scheme == "" && lookupKey:
		// A bare address in an "ip" parameter is usually looked up (geolocation, whois), not
		// connected to.
		return find(threat.Low, 0.4, class+" address")
	case class != "" && u.scheme == "":
		// A bare internal address in a parameter named for a host or URL ("localhost",
		// "2130706433"): the tool connects to what it is given, so it is as good as a URL.
		return find(threat.High, 0.8, class+" address")
	case class != "":
		return find(threat.High, 0.85, class+" address")
	case dangerousSchemes[u.scheme]:
		return find(threat.High, 0.8, u.scheme+":// scheme")
	}
	return Finding{}, false
}

func (d ssrfDetector) resolveClass(parent context.Context, host string) string {
	ctx, cancel := context.WithTimeout(parent, resolveTimeout)
	defer cancel()
	addrs, err := d.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "" // unresolvable names cannot be fetched either
	}
	for _, a := range addrs {
		if c := classifyAddr(a); c != "" {
			return c + " (resolved)"
		}
	}
	return ""
}

// ssrfLookupKey reports whether a parameter name says it holds an IP address to look up.
func ssrfLookupKey(key string) bool {
	lk := strings.ToLower(key)
	return lk == "ip" || strings.HasPrefix(lk, "ip_") || strings.HasSuffix(lk, "_ip") || strings.Contains(lk, "ip_address")
}

// hostKeyWords are the words isHostKey looks for, matched in one pass.
var hostKeyWords = newLitSet("url", "uri", "host", "endpoint", "webhook", "callback", "domain", "address", "server", "link", "href", "redirect", "target", "proxy", "origin")

// isHostKey reports whether a parameter name says it holds a URL or a host.
func isHostKey(key string) bool {
	k := strings.ToLower(key)
	return hostKeyWords.contains(k)
}

// extractURLs finds every scheme://authority in s and, when hostKey is set and s holds no URL,
// treats the whole value as a host[:port].
func extractURLs(s string, hostKey bool) []ssrfURL {
	var out []ssrfURL
	low := lowerASCII(s)
	for i := 0; i < len(low) && len(out) <= maxSSRFHosts; {
		j := strings.Index(low[i:], "://")
		if j < 0 {
			break
		}
		j += i
		k := j
		for k > i && isSchemeByte(low[k-1]) {
			k--
		}
		end := j + 3
		for end < len(low) && !strings.ContainsRune(" \t\r\n\"'<>`", rune(low[end])) {
			end++
		}
		if scheme := low[k:j]; scheme != "" {
			out = append(out, ssrfURL{scheme: scheme, host: authorityHost(low[j+3 : end]), text: s[k:end]})
		}
		i = j + 3 // URLs nest: https://redirector/?to=http://127.0.0.1/
	}
	if len(out) == 0 && hostKey {
		t := strings.TrimPrefix(strings.TrimSpace(low), "//")
		if t != "" && !cs22.in(t) {
			out = append(out, ssrfURL{host: authorityHost(t), text: s})
		}
	}
	return out
}

// labelSeparators are the characters UTS #46 maps to a full stop between host labels: the
// ideographic (U+3002), fullwidth (U+FF0E), halfwidth ideographic (U+FF61) and small (U+FE52)
// full stops. A resolver's IDNA mapping turns "127。0。0。1" into 127.0.0.1.
var labelSeparators = strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".", "\ufe52", ".")

// foldLabelSeparators maps every UTS #46 label separator in a host to '.'.
func foldLabelSeparators(h string) string {
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			return labelSeparators.Replace(h)
		}
	}
	return h
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// authorityHost extracts the host from "userinfo@host:port/path?query". Like URL parsers, the
// last '@' before the path ends the userinfo — the classic http://trusted@evil/ confusion.
func authorityHost(a string) string {
	a = foldLabelSeparators(a)
	if i := cs23.index(a); i >= 0 {
		a = a[:i]
	}
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		a = a[i+1:]
	}
	if i := strings.IndexByte(a, '\\'); i >= 0 {
		a = a[:i]
	}
	if strings.HasPrefix(a, "[") {
		if i := strings.IndexByte(a, ']'); i > 0 {
			return a[1:i]
		}
		return strings.Trim(a, "[]")
	}
	if strings.Count(a, ":") == 1 {
		a = a[:strings.IndexByte(a, ':')]
	}
	return strings.TrimRight(a, ".:")
}

func isIPLiteral(h string) bool {
	_, ok := parseHostIP(h)
	return ok
}

// rebindNames are public DNS names that resolve to loopback, or that embed an address they
// resolve to (wildcard DNS services).
var (
	loopbackNames = []string{"localhost", "ip6-localhost", "ip6-loopback", "localtest.me", "lvh.me", "vcap.me", "lacolhost.com", "127-0-0-1.org.uk", "fbi.com"}
	wildcardDNS   = []string{"nip.io", "sslip.io", "xip.io", "nip.direct", "traefik.me", "localh.st"}
	// Services that answer with attacker-chosen addresses or redirects (DNS rebinding).
	rebindServices = []string{"rbndr.us", "1u.ms", "r3dir.me", "rebind.it", "rebind.network", "make-127-0-0-1-rr.1u.ms"}
	metadataNames  = []string{"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com", "metadata.packet.net", "metadata.tencentyun.com"}
)

func hostIs(h, name string) bool {
	return h == name || strings.HasSuffix(h, "."+name)
}

// classifyHost says what kind of internal target host names, or "" for none.
func classifyHost(h string) string {
	if h == "" {
		return ""
	}
	if a, ok := parseHostIP(h); ok {
		return classifyAddr(a)
	}
	if a, ok := parseHostIPWrapped(h); ok {
		if c := classifyAddr(a); c != "" {
			return c + " (overflowed address)"
		}
	}
	for _, n := range metadataNames {
		if h == n || n != "metadata" && hostIs(h, n) {
			return "cloud metadata"
		}
	}
	for _, n := range loopbackNames {
		if hostIs(h, n) {
			return "loopback"
		}
	}
	for _, n := range rebindServices {
		if hostIs(h, n) {
			return "DNS rebinding service"
		}
	}
	for _, n := range wildcardDNS {
		if hostIs(h, n) {
			// 10.0.0.1.nip.io, 10-0-0-1.sslip.io, app.127.0.0.1.nip.io
			label := strings.TrimSuffix(h, "."+n)
			if c := classifyEmbedded(label); c != "" {
				return c + " (wildcard DNS)"
			}
			return ""
		}
	}
	switch {
	case strings.HasSuffix(h, ".internal"), strings.HasSuffix(h, ".local"), strings.HasSuffix(h, ".localdomain"),
		strings.HasSuffix(h, ".svc.cluster.local"), h == "kubernetes.default", strings.HasSuffix(h, ".svc"):
		return "internal name"
	}
	return ""
}

func classifyEmbedded(label string) string {
	parts := strings.Split(label, ".")
	for i := range parts {
		cand := strings.Join(parts[i:], ".")
		if a, err := netip.ParseAddr(cand); err == nil {
			return classifyAddr(a)
		}
	}
	last := parts[len(parts)-1]
	// dashed form: 10-0-0-1 or app-10-0-0-1
	if f := strings.Split(last, "-"); len(f) >= 4 {
		if a, err := netip.ParseAddr(strings.Join(f[len(f)-4:], ".")); err == nil {
			return classifyAddr(a)
		}
	}
	return ""
}

var (
	pfxCGNAT     = netip.MustParsePrefix("100.64.0.0/10")
	pfxThisNet   = netip.MustParsePrefix("0.0.0.0/8")
	pfxBenchmark = netip.MustParsePrefix("198.18.0.0/15")
	pfxIETF      = netip.MustParsePrefix("192.0.0.0/24")
	pfxNAT64     = netip.MustParsePrefix("64:ff9b::/96")
	pfx6to4      = netip.MustParsePrefix("2002::/16")
	metadataIPs  = map[netip.Addr]bool{
		netip.MustParseAddr("169.254.169.254"): true, netip.MustParseAddr("fd00:ec2::254"): true,
		netip.MustParseAddr("100.100.100.200"): true, netip.MustParseAddr("169.254.170.2"): true,
		netip.MustParseAddr("192.0.0.192"): true,
	}
)

// classifyAddr says what kind of internal address a is, or "" for a public one.
func classifyAddr(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if metadataIPs[a] {
		return "cloud metadata"
	}
	// Addresses that embed an IPv4 address: NAT64 and 6to4.
	if a.Is6() && (pfxNAT64.Contains(a) || pfx6to4.Contains(a)) {
		b := a.As16()
		var v4 netip.Addr
		if pfxNAT64.Contains(a) {
			v4 = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		} else {
			v4 = netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})
		}
		if c := classifyAddr(v4); c != "" {
			return c
		}
	}
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified(), a.Is4() && pfxThisNet.Contains(a):
		return "unspecified"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsPrivate():
		return "private"
	case a.Is4() && pfxCGNAT.Contains(a):
		return "carrier-grade NAT"
	case a.Is4() && (pfxBenchmark.Contains(a) || pfxIETF.Contains(a)):
		return "reserved"
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast/multicast"
	}
	return ""
}

// parseHostIP reads h as an IP address in any spelling a resolver or URL library accepts:
// standard IPv4/IPv6 (with zone), and the BSD inet_aton forms — 1 to 4 parts, each decimal, octal
// (leading 0) or hex (0x): 2130706433, 0x7f000001, 0177.0.0.1, 127.1, 0x7f.1.
func parseHostIP(h string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(h); err == nil {
		return a, true
	}
	if strings.IndexByte(h, ':') >= 0 {
		if i := strings.IndexByte(h, '%'); i > 0 {
			if a, err := netip.ParseAddr(h[:i]); err == nil {
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	parts := strings.Split(h, ".")
	if len(parts) > 4 || len(parts) == 0 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base := 10
		switch {
		case strings.HasPrefix(p, "0x"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = n
	}
	var ip uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 255 {
			return netip.Addr{}, false
		}
		ip |= vals[i] << (8 * (3 - i))
	}
	if vals[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	ip |= vals[last]
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// parseHostIPWrapped reads the overflowing numeric spellings some URL libraries accept by
// truncation — 425.510.425.510, 7147006462, 0x41414141a9fea9fe — the way they read them: each
// part modulo its field size.
func parseHostIPWrapped(h string) (netip.Addr, bool) {
	parts := strings.Split(h, ".")
	if len(parts) > 4 || len(parts) == 0 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "0x") && len(p) > 2:
			p = p[2:]
			if len(p) > 8 {
				p = p[len(p)-8:]
			}
			n, err := strconv.ParseUint(p, 16, 64)
			if err != nil {
				return netip.Addr{}, false
			}
			vals[i] = n
		default:
			n, err := strconv.ParseUint(p, 10, 64)
			if err != nil {
				return netip.Addr{}, false
			}
			vals[i] = n
		}
	}
	var ip uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		ip |= (vals[i] % 256) << (8 * (3 - i))
	}
	ip |= vals[last] % (1 << (8 * (4 - last)))
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// StaticResolver is a Resolver backed by a fixed table, for tests and for air-gapped deployments
// that pin internal names. Unknown names fail to resolve.
type StaticResolver map[string][]netip.Addr

var _ Resolver = StaticResolver(nil)

// LookupNetIP implements Resolver.
func (s StaticResolver) LookupNetIP(ctx context.Context, _ string, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if a, ok := s[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
		return a, nil
	}
	return nil, ErrNoSuchHost
}
