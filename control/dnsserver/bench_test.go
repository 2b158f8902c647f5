package dnsserver

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Benchmark data: benchZones full customer zones with one record each
// (every tenth a CNAME to the previous zone's tunnel record, the rest a
// tunnel AAAA), and benchRegions discovery regions with an IPv4 and an
// IPv6 address each.
const (
	benchZones   = 1000
	benchRegions = 6
)

func benchData() *Data {
	d := &Data{
		Domain:     "culvert.test",
		EdgeAddrs:  addrs("2001:db8::1", "192.0.2.1"),
		TunnelPort: DefaultTunnelPort,
		TTL:        DefaultTTL,
	}
	for i := range benchRegions {
		d.Regions = append(d.Regions, Region{
			Name: fmt.Sprintf("region%d", i+1),
			Addrs: []netip.Addr{
				netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}),
				netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i + 1), 15: 1}),
			},
		})
	}
	for i := range benchZones {
		zone := fmt.Sprintf("zone%04d.test", i)
		d.Zones = append(d.Zones, Zone{Name: zone})
		if i%10 == 9 {
			d.Records = append(d.Records, Record{
				Name: "www." + zone, Type: "CNAME",
				Values: []string{fmt.Sprintf("app.zone%04d.test", i-1)},
			})
			continue
		}
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 14: byte(i >> 8), 15: byte(i)})
		d.Records = append(d.Records, Record{Name: "app." + zone, Type: "AAAA", Values: []string{a.String()}})
	}
	return d
}

// benchCase is one query and a check of its reply.
type benchCase struct {
	name  string
	qname string
	qtype uint16
	check func(*dns.Msg) error
}

var benchCases = []benchCase{
	{"AAAA", "app.zone0500.test.", dns.TypeAAAA, func(r *dns.Msg) error {
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeAAAA {
			return fmt.Errorf("want one AAAA, got\n%v", r)
		}
		return nil
	}},
	{"CNAME", "www.zone0509.test.", dns.TypeAAAA, func(r *dns.Msg) error {
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 ||
			r.Answer[0].Header().Rrtype != dns.TypeCNAME || r.Answer[1].Header().Rrtype != dns.TypeAAAA ||
			r.Answer[1].Header().Name != "app.zone0508.test." {
			return fmt.Errorf("want CNAME chased to app.zone0508.test. AAAA, got\n%v", r)
		}
		return nil
	}},
	{"SRV", SRVName + ".culvert.test.", dns.TypeSRV, func(r *dns.Msg) error {
		glue := 0
		for _, rr := range r.Extra {
			if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
				glue++
			}
		}
		if r.Rcode != dns.RcodeSuccess || r.Truncated || len(r.Answer) != benchRegions || glue != 2*benchRegions {
			return fmt.Errorf("want %d SRV with %d glue records, got\n%v", benchRegions, 2*benchRegions, r)
		}
		return nil
	}},
	{"NXDOMAIN", "nope.zone0500.test.", dns.TypeAAAA, func(r *dns.Msg) error {
		if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			return fmt.Errorf("want NXDOMAIN with the SOA, got\n%v", r)
		}
		return nil
	}},
}

// benchQuery packs the query a resolver sends: EDNS0 with a 1232-byte
// UDP size, DO clear.
func benchQuery(b *testing.B, qname string, qtype uint16) []byte {
	return packed(b, qname, qtype, func(m *dns.Msg) { m.SetEdns0(ourUDPSize, false) })
}

func reportQPS(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}

// BenchmarkAnswer drives the handler in process, as the dns library's UDP
// server does for each datagram: unpack the query, serveDNS, pack the
// reply (here into a reused buffer). No sockets.
func BenchmarkAnswer(b *testing.B) {
	s := New(Config{Logger: quiet})
	s.Set(benchData())
	if snap := s.snap.Load(); len(snap.skipped) != 0 {
		b.Fatalf("data left out: %q", snap.skipped)
	}
	for _, tc := range benchCases {
		b.Run(tc.name, func(b *testing.B) {
			query := benchQuery(b, tc.qname, tc.qtype)
			w := &fakeWriter{network: "udp"}
			buf := make([]byte, maxUDPSize)
			serve := func() []byte {
				req := new(dns.Msg)
				if err := req.Unpack(query); err != nil {
					b.Fatal(err)
				}
				w.msgs = w.msgs[:0]
				s.serveDNS(w, req)
				if len(w.msgs) != 1 {
					b.Fatalf("%d replies", len(w.msgs))
				}
				out, err := w.msgs[0].PackBuffer(buf)
				if err != nil {
					b.Fatal(err)
				}
				return out
			}
			r := new(dns.Msg)
			if err := r.Unpack(serve()); err != nil {
				b.Fatal(err)
			}
			if err := tc.check(r); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
			reportQPS(b)
		})
	}
}

// BenchmarkUDP measures round trips over loopback to a started Server:
// one client socket, one query in flight at a time.
func BenchmarkUDP(b *testing.B) {
	d := benchData()
	s := New(Config{Addr: "127.0.0.1:0", Logger: quiet, Load: func() (*Data, error) { return d, nil }, Refresh: time.Hour})
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	})
	tc := benchCases[0] // AAAA
	b.Run(tc.name, func(b *testing.B) {
		c := &dns.Client{Net: "udp", UDPSize: ourUDPSize, Timeout: 3 * time.Second}
		conn, err := c.Dial(s.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		q := new(dns.Msg).SetQuestion(tc.qname, tc.qtype)
		q.SetEdns0(ourUDPSize, false)
		exchange := func() *dns.Msg {
			q.Id = dns.Id()
			r, _, err := c.ExchangeWithConn(q, conn)
			if err != nil {
				b.Fatal(err)
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				b.Fatalf("bad reply\n%v", r)
			}
			return r
		}
		if err := tc.check(exchange()); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			exchange()
		}
		reportQPS(b)
	})
}
