package connector_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/control/dnsserver"
	"github.com/culvert-tunnel/culvert/dataplane/connector"
	"github.com/miekg/dns"
)

func startDNS(t *testing.T, d *dnsserver.Data) string {
	t.Helper()
	s := dnsserver.New(dnsserver.Config{
		Addr:    "127.0.0.1:0",
		Logger:  slog.New(slog.DiscardHandler),
		Load:    func() (*dnsserver.Data, error) { return d, nil },
		Refresh: time.Hour,
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestDiscoverEdgesInterleavesRegions(t *testing.T) {
	addr := startDNS(t, &dnsserver.Data{
		Domain:    "culvert.test",
		EdgeAddrs: mustAddrs("192.0.2.1"),
		Regions: []dnsserver.Region{
			{Name: "region1", Addrs: mustAddrs("198.51.100.1", "2001:db8:1::1")},
			{Name: "region2", Addrs: mustAddrs("198.51.100.2", "198.51.100.22", "::ffff:198.51.100.23")},
		},
		TunnelPort: 7844,
	})
	got, err := connector.DiscoverEdges(context.Background(), addr, "culvert.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"198.51.100.1:7844", "198.51.100.2:7844",
		"[2001:db8:1::1]:7844", "198.51.100.22:7844",
		"198.51.100.23:7844",
	}
	if !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
	// A trailing dot and another case do not matter.
	got, err = connector.DiscoverEdges(context.Background(), addr, "CULVERT.test.")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("edges %q, %v", got, err)
	}
}

func TestDiscoverEdgesTruncatedFallsBackToTCP(t *testing.T) {
	// 60 regions: the SRV answer alone is larger than a UDP answer may be.
	var regions []dnsserver.Region
	for i := range 60 {
		regions = append(regions, dnsserver.Region{
			Name:  fmt.Sprintf("region%02d", i),
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{10, 9, 0, byte(i + 1)})},
		})
	}
	addr := startDNS(t, &dnsserver.Data{Domain: "culvert.test", Regions: regions, TunnelPort: 443})
	got, err := connector.DiscoverEdges(context.Background(), addr, "culvert.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 60 || got[0] != "10.9.0.1:443" || got[59] != "10.9.0.60:443" {
		t.Errorf("%d edges: %q", len(got), got)
	}
}

func TestDiscoverEdgesErrors(t *testing.T) {
	addr := startDNS(t, &dnsserver.Data{Domain: "culvert.test", EdgeAddrs: mustAddrs("192.0.2.1")})

	// The domain is ours but has no regions: NODATA.
	_, err := connector.DiscoverEdges(context.Background(), addr, "culvert.test")
	if err == nil || !strings.Contains(err.Error(), "no SRV records for _culvert._tcp.culvert.test.") || !strings.Contains(err.Error(), addr) {
		t.Errorf("no SRV: %v", err)
	}

	// A domain the server does not serve.
	_, err = connector.DiscoverEdges(context.Background(), addr, "elsewhere.test")
	if err == nil || !strings.Contains(err.Error(), "_culvert._tcp.elsewhere.test.") || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("foreign domain: %v", err)
	}

	if _, err = connector.DiscoverEdges(context.Background(), addr, ""); err == nil {
		t.Error("empty domain: no error")
	}
	if _, err = connector.DiscoverEdges(context.Background(), "no-port", "culvert.test"); err == nil {
		t.Error("resolver without a port: no error")
	}
}

func TestDiscoverEdgesServerNotAnswering(t *testing.T) {
	// A UDP socket that reads queries and never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = connector.DiscoverEdges(ctx, pc.LocalAddr().String(), "culvert.test")
	if err == nil || !strings.Contains(err.Error(), "_culvert._tcp.culvert.test.") || !strings.Contains(err.Error(), pc.LocalAddr().String()) {
		t.Errorf("silent server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v with a 300ms context", d)
	}

	// Cancelling (no deadline) ends the wait too.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	if _, err = connector.DiscoverEdges(ctx, pc.LocalAddr().String(), "culvert.test"); err == nil {
		t.Error("cancelled: no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v after a cancel at 200ms", d)
	}
}

// TestDiscoverEdgesWithoutGlue uses a server that answers the SRV query
// without additional records, out of priority order: the addresses come
// from A and AAAA queries to the same server.
func TestDiscoverEdgesWithoutGlue(t *testing.T) {
	h := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg).SetReply(req)
		m.Authoritative = true
		q := req.Question[0]
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
		}
		switch {
		case q.Qtype == dns.TypeSRV && q.Name == "_culvert._tcp.glueless.test.":
			m.Answer = []dns.RR{
				&dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 2, Weight: 1, Port: 7001, Target: "backup.glueless.test."},
				&dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 1, Weight: 1, Port: 7002, Target: "light.glueless.test."},
				&dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 1, Weight: 10, Port: 7003, Target: "heavy.glueless.test."},
				&dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 1, Weight: 5, Port: 7004, Target: "."},
			}
		case q.Qtype == dns.TypeA && q.Name == "backup.glueless.test.":
			m.Answer = []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(192, 0, 2, 30)}}
		case q.Qtype == dns.TypeA && q.Name == "light.glueless.test.":
			m.Answer = []dns.RR{&dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(192, 0, 2, 20)}}
		case q.Qtype == dns.TypeAAAA && q.Name == "light.glueless.test.":
			m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP("2001:db8::20")}}
		case q.Qtype == dns.TypeAAAA && q.Name == "heavy.glueless.test.":
			m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP("2001:db8::10")}}
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	defer srv.Shutdown()

	got, err := connector.DiscoverEdges(context.Background(), pc.LocalAddr().String(), "glueless.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"[2001:db8::10]:7003", "192.0.2.20:7002", "192.0.2.30:7001", "[2001:db8::20]:7002"}
	if !slices.Equal(got, want) {
		t.Errorf("edges %q, want %q", got, want)
	}
}
