package inspect

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/portcullis-ai/portcullis/internal/threat"
)

func TestSSRFDetector(t *testing.T) {
	lvl := func(l threat.Level) []kindLevel { return []kindLevel{{KindSSRF, l}} }
	tests := []struct {
		name, key, raw string
		want           []kindLevel
	}{
		{"aws metadata", "url", "http://169.254.169.254/latest/meta-data/iam/", lvl(threat.Critical)},
		{"ec2 ipv6 metadata", "url", "http://[fd00:ec2::254]/latest/", lvl(threat.Critical)},
		{"gcp metadata name", "url", "http://metadata.google.internal/computeMetadata/v1/", lvl(threat.Critical)},
		{"loopback", "url", "http://127.0.0.1:8080/admin", lvl(threat.High)},
		{"localhost name", "url", "https://localhost/debug", lvl(threat.High)},
		{"decimal loopback", "url", "http://2130706433/", lvl(threat.High)},
		{"octal loopback", "url", "http://0177.0.0.1/", lvl(threat.High)},
		{"hex loopback", "url", "http://0x7f000001/", lvl(threat.High)},
		{"short loopback", "url", "http://127.1/", lvl(threat.High)},
		{"mapped v6", "url", "http://[::ffff:127.0.0.1]/", lvl(threat.High)},
		{"unspecified v6", "url", "http://[::]:80/", lvl(threat.High)},
		{"zero address", "url", "http://0.0.0.0:6379/", lvl(threat.High)},
		{"private ten", "endpoint", "https://10.20.30.40/api", lvl(threat.High)},
		{"cgnat", "url", "http://100.72.1.9/", lvl(threat.High)},
		{"link local", "url", "http://169.254.10.1/", lvl(threat.High)},
		{"userinfo confusion", "url", "http://trusted.example@192.168.0.5/", lvl(threat.High)},
		{"nip.io", "url", "http://10.0.0.7.nip.io/", lvl(threat.High)},
		{"sslip dashed", "url", "http://app-192-168-1-2.sslip.io/", lvl(threat.High)},
		{"localtest.me", "url", "http://admin.localtest.me/", lvl(threat.High)},
		{"gopher scheme", "url", "gopher://example.org:70/_hello", lvl(threat.High)},
		{"dict to loopback", "url", "dict://127.0.0.1:11211/stat", lvl(threat.Critical)},
		{"nested redirect target", "url", "https://example.org/go?to=http://127.0.0.1/", lvl(threat.High)},
		{"overflowed decimal", "url", "http://4294967297/", lvl(threat.High)},
		{"url inside prose", "text", "please fetch http://192.168.1.10/status now", lvl(threat.High)},
		{"bare private ip in lookup", "ip_address", "192.168.1.1", lvl(threat.Low)},
		// A bare internal host in a host- or URL-named parameter is as good as a URL.
		{"bare private host", "host", "192.168.1.1", lvl(threat.High)},
		{"bare localhost", "host", "localhost", lvl(threat.High)},
		{"bare decimal loopback in url", "url", "2130706433", lvl(threat.High)},
		{"bare host with port", "server", "127.0.0.1:6379", lvl(threat.High)},
		// UTS #46 label separators are full stops to a resolver.
		{"ideographic full stops", "url", "http://127\u30020\u30020\u30021/admin", lvl(threat.High)},
		{"halfwidth ideographic full stops", "url", "http://169\uff61254\uff61169\uff61254/latest/", lvl(threat.Critical)},
		{"small full stops", "url", "http://10\ufe520\ufe520\ufe527/", lvl(threat.High)},
		{"fullwidth full stops", "host", "192\uff0e168\uff0e0\uff0e1", lvl(threat.High)},
		{"public url", "url", "https://api.example.com/v1/items?id=3", nil},
		{"public ip", "url", "http://93.184.216.34/", nil},
		{"nip.io public", "url", "http://93.184.216.34.nip.io/", nil},
		{"version number not a host", "text", "release 127.0.0.1-beta notes", nil},
		{"bare ip in non-host key", "count", "10.0.0.1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspectOne(ssrfDetector{}, "fetch", tt.key, tt.raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Inspect(%q) mismatch (-want +got):\n%s", tt.raw, diff)
			}
		})
	}
}

func TestSSRFResolver(t *testing.T) {
	res := StaticResolver{
		"intranet.corp.example": {netip.MustParseAddr("10.1.2.3")},
		"www.example.com":       {netip.MustParseAddr("93.184.216.34")},
	}
	d := ssrfDetector{resolver: res}
	if diff := cmp.Diff([]kindLevel{{KindSSRF, threat.High}}, inspectOne(d, "fetch", "url", "https://intranet.corp.example/wiki")); diff != "" {
		t.Errorf("resolved private name (-want +got):\n%s", diff)
	}
	if got := inspectOne(d, "fetch", "url", "https://www.example.com/"); got != nil {
		t.Errorf("public name flagged: %v", got)
	}
	if got := inspectOne(d, "fetch", "url", "https://unknown.example/"); got != nil {
		t.Errorf("unresolvable name flagged: %v", got)
	}
}

func TestParseHostIP(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"2130706433", "127.0.0.1"}, {"0x7f.1", "127.0.0.1"}, {"0177.0.1", "127.0.0.1"},
		{"10.1", "10.0.0.1"}, {"::1", "::1"}, {"fe80::1%eth0", "fe80::1%eth0"}, {"256.1.1.1", ""},
		{"1.2.3.4.5", ""}, {"example.com", ""}, {"08.1.1.1", ""},
	}
	for _, tt := range tests {
		a, ok := parseHostIP(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("parseHostIP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSSRFDetector(f *testing.F) {
	for _, s := range []string{"http://0x7f.1/", "http://[::ffff:1.2.3.4]/", "a://@@:", "gopher://", "http://1.2.3.4.nip.io"} {
		f.Add("url", s)
	}
	f.Fuzz(func(t *testing.T, key, raw string) {
		v := testValue("$.u", key, raw)
		ssrfDetector{}.Inspect(&Call{Tool: "fetch"}, &v, func(fd Finding) {
			if fd.Kind != KindSSRF || fd.Score <= 0 || fd.Score > 1 {
				t.Fatalf("bad finding %+v", fd)
			}
		})
		parseHostIP(raw)
		parseHostIPWrapped(raw)
	})
}

func BenchmarkSSRF(b *testing.B) { benchDetector(b, ssrfDetector{}) }
