package dnsserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var quiet = slog.New(slog.DiscardHandler)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func testData() *Data {
	big := make([]string, 60)
	for i := range big {
		big[i] = fmt.Sprintf("10.0.%d.%d", i/200, i%200+1)
	}
	return &Data{
		Domain:    "culvert.test",
		EdgeAddrs: addrs("2001:db8::1", "192.0.2.1"),
		Regions: []Region{
			{Name: "region1", Addrs: addrs("198.51.100.1", "2001:db8:1::1")},
			{Name: "region2", Addrs: addrs("198.51.100.2", "::ffff:198.51.100.22")},
		},
		TunnelPort: 7844,
		Zones: []Zone{
			{Name: "example.test", Partial: true},
			{Name: "full.test"},
		},
		Records: []Record{
			{Name: "app.full.test", Type: "AAAA", Values: []string{"2001:db8::10"}},
			{Name: "app.full.test", Type: "A", Values: []string{"192.0.2.10"}},
			{Name: "www.full.test", Type: "CNAME", Values: []string{"app.full.test"}},
			{Name: "chain.full.test", Type: "CNAME", Values: []string{"WWW.full.test."}},
			{Name: "ext.full.test", Type: "CNAME", Values: []string{"elsewhere.org"}},
			{Name: "dangling.full.test", Type: "CNAME", Values: []string{"missing.full.test"}},
			{Name: "loop1.full.test", Type: "CNAME", Values: []string{"loop2.full.test"}},
			{Name: "loop2.full.test", Type: "CNAME", Values: []string{"loop1.full.test"}},
			{Name: "deep.a.b.full.test", Type: "A", Values: []string{"192.0.2.20"}},
			{Name: "big.full.test", Type: "A", Values: big},
			{Name: "partial.example.test", Type: "A", Values: []string{"192.0.2.99"}}, // left out: partial zone
		},
		CDNNames: []string{"app.example.test"},
		Pools:    []string{"pool1"},
		TTL:      30,
	}
}

// startServer runs a Server on 127.0.0.1 port 0 with d.
func startServer(t *testing.T, d *Data) *Server {
	t.Helper()
	s := New(Config{Addr: "127.0.0.1:0", Logger: quiet, Load: func() (*Data, error) { return d, nil }, Refresh: time.Hour})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type qopt func(*dns.Msg)

func edns(size uint16) qopt { return func(m *dns.Msg) { m.SetEdns0(size, false) } }

// ask sends one query over network ("udp" or "tcp") and returns the reply.
func ask(t *testing.T, s *Server, network, name string, qtype uint16, opts ...qopt) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	for _, o := range opts {
		o(m)
	}
	return exchange(t, s, network, m)
}

func exchange(t *testing.T, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 65535}
	if network == "udp" && m.IsEdns0() == nil {
		c.UDPSize = 0 // plain 512-byte client
	}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %v %s: %v", network, m.Question, dns.OpcodeToString[m.Opcode], err)
	}
	return r
}

// values returns the answer section's data (A/AAAA as IPs, names, ...) of
// the given type, sorted.
func values(rrs []dns.RR, qtype uint16) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != qtype {
			continue
		}
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.CNAME:
			out = append(out, rr.Target)
		case *dns.NS:
			out = append(out, rr.Ns)
		case *dns.SRV:
			out = append(out, fmt.Sprintf("%d %d %d %s", rr.Priority, rr.Weight, rr.Port, rr.Target))
		default:
			out = append(out, rr.String())
		}
	}
	sort.Strings(out)
	return out
}

func wantRcode(t *testing.T, r *dns.Msg, rcode int) {
	t.Helper()
	if r.Rcode != rcode {
		t.Fatalf("%v: rcode %s, want %s\n%s", r.Question, dns.RcodeToString[r.Rcode], dns.RcodeToString[rcode], r)
	}
	if r.RecursionAvailable {
		t.Errorf("%v: RA set", r.Question)
	}
}

func wantAnswer(t *testing.T, r *dns.Msg, qtype uint16, want ...string) {
	t.Helper()
	wantRcode(t, r, dns.RcodeSuccess)
	if !r.Authoritative {
		t.Errorf("%v: AA not set", r.Question)
	}
	sort.Strings(want)
	if got := values(r.Answer, qtype); !slices.Equal(got, want) {
		t.Errorf("%v: %s answers %q, want %q\n%s", r.Question, dns.TypeToString[qtype], got, want, r)
	}
}

// wantNegative checks an NXDOMAIN or NODATA answer: empty answer, AA, and
// the SOA of apex in the authority section.
func wantNegative(t *testing.T, r *dns.Msg, rcode int, apex string) {
	t.Helper()
	wantRcode(t, r, rcode)
	if !r.Authoritative {
		t.Errorf("%v: AA not set", r.Question)
	}
	if len(r.Answer) != 0 {
		t.Errorf("%v: answer %v, want none", r.Question, r.Answer)
	}
	if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA || r.Ns[0].Header().Name != apex {
		t.Errorf("%v: authority %v, want the SOA of %s", r.Question, r.Ns, apex)
	}
}

func TestApexSOAAndNS(t *testing.T) {
	s := startServer(t, testData())
	for _, network := range []string{"udp", "tcp"} {
		for _, apex := range []string{"culvert.test.", "full.test."} {
			r := ask(t, s, network, apex, dns.TypeSOA)
			wantRcode(t, r, dns.RcodeSuccess)
			if !r.Authoritative || len(r.Answer) != 1 {
				t.Fatalf("%s SOA: %v", apex, r)
			}
			soa := r.Answer[0].(*dns.SOA)
			if soa.Hdr.Name != apex || soa.Ns != "ns1.culvert.test." || soa.Mbox != "hostmaster.culvert.test." ||
				soa.Serial == 0 || soa.Refresh == 0 || soa.Retry == 0 || soa.Expire <= soa.Refresh || soa.Minttl != 30 || soa.Hdr.Ttl != 30 {
				t.Errorf("SOA %v", soa)
			}

			r = ask(t, s, network, apex, dns.TypeNS)
			wantAnswer(t, r, dns.TypeNS, "ns1.culvert.test.", "ns2.culvert.test.")
			// glue for the name servers
			if got := values(r.Extra, dns.TypeA); !slices.Equal(got, []string{"192.0.2.1", "192.0.2.1"}) {
				t.Errorf("NS glue A %q", got)
			}
			if got := values(r.Extra, dns.TypeAAAA); len(got) != 2 {
				t.Errorf("NS glue AAAA %q", got)
			}
		}
	}
	for _, ns := range []string{"ns1.culvert.test.", "ns2.culvert.test."} {
		wantAnswer(t, ask(t, s, "udp", ns, dns.TypeA), dns.TypeA, "192.0.2.1")
		wantAnswer(t, ask(t, s, "udp", ns, dns.TypeAAAA), dns.TypeAAAA, "2001:db8::1")
	}
}

func soaSerial(t *testing.T, s *Server) uint32 {
	t.Helper()
	r := ask(t, s, "udp", "culvert.test.", dns.TypeSOA)
	if len(r.Answer) != 1 {
		t.Fatalf("no SOA: %v", r)
	}
	return r.Answer[0].(*dns.SOA).Serial
}

func TestSerialFollowsData(t *testing.T) {
	s := startServer(t, testData())
	s1 := soaSerial(t, s)
	s.Set(testData()) // same content
	if s2 := soaSerial(t, s); s2 != s1 {
		t.Errorf("serial changed without a data change: %d -> %d", s1, s2)
	}
	d := testData()
	d.Pools = append(d.Pools, "pool2")
	s.Set(d)
	s3 := soaSerial(t, s)
	if s3 <= s1 {
		t.Errorf("serial after a data change %d, want > %d", s3, s1)
	}
	// The serial is per snapshot: full.test's SOA has it too.
	r := ask(t, s, "udp", "full.test.", dns.TypeSOA)
	if got := r.Answer[0].(*dns.SOA).Serial; got != s3 {
		t.Errorf("full.test serial %d, want %d", got, s3)
	}
}

func TestEdgeNames(t *testing.T) {
	s := startServer(t, testData())
	for _, name := range []string{"tunnel.culvert.test.", "api.culvert.test.", "app.example.test.cdn.culvert.test.", "pool1.lb.culvert.test."} {
		wantAnswer(t, ask(t, s, "udp", name, dns.TypeA), dns.TypeA, "192.0.2.1")
		wantAnswer(t, ask(t, s, "tcp", name, dns.TypeAAAA), dns.TypeAAAA, "2001:db8::1")
	}
	wantAnswer(t, ask(t, s, "udp", "region1.culvert.test.", dns.TypeA), dns.TypeA, "198.51.100.1")
	wantAnswer(t, ask(t, s, "udp", "region1.culvert.test.", dns.TypeAAAA), dns.TypeAAAA, "2001:db8:1::1")
	// an IPv4-mapped IPv6 address is an IPv4 address
	wantAnswer(t, ask(t, s, "udp", "region2.culvert.test.", dns.TypeA), dns.TypeA, "198.51.100.2", "198.51.100.22")
	wantNegative(t, ask(t, s, "udp", "region2.culvert.test.", dns.TypeAAAA), dns.RcodeSuccess, "culvert.test.")
	// unknown cdn and lb names
	wantNegative(t, ask(t, s, "udp", "other.example.test.cdn.culvert.test.", dns.TypeA), dns.RcodeNameError, "culvert.test.")
	wantNegative(t, ask(t, s, "udp", "pool2.lb.culvert.test.", dns.TypeA), dns.RcodeNameError, "culvert.test.")
}

func TestSRVWithGlue(t *testing.T) {
	s := startServer(t, testData())
	for _, network := range []string{"udp", "tcp"} {
		r := ask(t, s, network, "_culvert._tcp.culvert.test.", dns.TypeSRV)
		wantAnswer(t, r, dns.TypeSRV, "1 1 7844 region1.culvert.test.", "1 1 7844 region2.culvert.test.")
		// the answer lists the regions in their order
		if r.Answer[0].(*dns.SRV).Target != "region1.culvert.test." {
			t.Errorf("first SRV %v", r.Answer[0])
		}
		glue := map[string][]string{}
		for _, rr := range r.Extra {
			switch rr := rr.(type) {
			case *dns.A:
				glue[rr.Hdr.Name] = append(glue[rr.Hdr.Name], rr.A.String())
			case *dns.AAAA:
				glue[rr.Hdr.Name] = append(glue[rr.Hdr.Name], rr.AAAA.String())
			}
		}
		if got := glue["region1.culvert.test."]; !slices.Equal(got, []string{"198.51.100.1", "2001:db8:1::1"}) {
			t.Errorf("%s: region1 glue %q", network, got)
		}
		if got := glue["region2.culvert.test."]; !slices.Equal(got, []string{"198.51.100.2", "198.51.100.22"}) {
			t.Errorf("%s: region2 glue %q", network, got)
		}
	}
	// default port
	d := testData()
	d.TunnelPort = 0
	s.Set(d)
	r := ask(t, s, "udp", "_culvert._tcp.culvert.test.", dns.TypeSRV)
	if r.Answer[0].(*dns.SRV).Port != DefaultTunnelPort {
		t.Errorf("SRV port %v", r.Answer[0])
	}
}

func TestFullZoneRecords(t *testing.T) {
	s := startServer(t, testData())
	wantAnswer(t, ask(t, s, "udp", "app.full.test.", dns.TypeA), dns.TypeA, "192.0.2.10")
	wantAnswer(t, ask(t, s, "udp", "app.full.test.", dns.TypeAAAA), dns.TypeAAAA, "2001:db8::10")
	wantAnswer(t, ask(t, s, "tcp", "deep.a.b.full.test.", dns.TypeA), dns.TypeA, "192.0.2.20")
	// the record in the partial zone was left out: the zone is refused
	wantRcode(t, ask(t, s, "udp", "partial.example.test.", dns.TypeA), dns.RcodeRefused)
}

func TestCNAME(t *testing.T) {
	s := startServer(t, testData())

	r := ask(t, s, "udp", "www.full.test.", dns.TypeA)
	wantAnswer(t, r, dns.TypeCNAME, "app.full.test.")
	wantAnswer(t, r, dns.TypeA, "192.0.2.10")
	if r.Answer[0].Header().Rrtype != dns.TypeCNAME {
		t.Errorf("CNAME not first: %v", r.Answer)
	}

	r = ask(t, s, "udp", "chain.full.test.", dns.TypeAAAA)
	wantAnswer(t, r, dns.TypeCNAME, "app.full.test.", "www.full.test.")
	wantAnswer(t, r, dns.TypeAAAA, "2001:db8::10")

	// a CNAME query gets the CNAME alone
	r = ask(t, s, "udp", "www.full.test.", dns.TypeCNAME)
	wantAnswer(t, r, dns.TypeCNAME, "app.full.test.")
	if len(r.Answer) != 1 {
		t.Errorf("CNAME query answered %v", r.Answer)
	}

	// a target outside our authorities is for the client to follow
	r = ask(t, s, "udp", "ext.full.test.", dns.TypeA)
	wantAnswer(t, r, dns.TypeCNAME, "elsewhere.org.")
	if len(r.Answer) != 1 || len(r.Ns) != 0 {
		t.Errorf("external CNAME: %v", r)
	}

	// a target that does not exist: NXDOMAIN for the last name (RFC 6604)
	r = ask(t, s, "udp", "dangling.full.test.", dns.TypeA)
	wantRcode(t, r, dns.RcodeNameError)
	if got := values(r.Answer, dns.TypeCNAME); !slices.Equal(got, []string{"missing.full.test."}) || len(r.Ns) != 1 {
		t.Errorf("dangling CNAME: %v", r)
	}

	// a target without data of the type: NODATA with the SOA
	r = ask(t, s, "udp", "www.full.test.", dns.TypeMX)
	wantRcode(t, r, dns.RcodeSuccess)
	if len(r.Answer) != 1 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("CNAME to NODATA: %v", r)
	}

	// a loop ends
	r = ask(t, s, "tcp", "loop1.full.test.", dns.TypeA)
	wantAnswer(t, r, dns.TypeCNAME, "loop1.full.test.", "loop2.full.test.")
}

func TestNegativeAnswers(t *testing.T) {
	s := startServer(t, testData())
	for _, network := range []string{"udp", "tcp"} {
		wantNegative(t, ask(t, s, network, "nope.full.test.", dns.TypeA), dns.RcodeNameError, "full.test.")
		wantNegative(t, ask(t, s, network, "nope.culvert.test.", dns.TypeA), dns.RcodeNameError, "culvert.test.")
		wantNegative(t, ask(t, s, network, "x.deep.a.b.full.test.", dns.TypeA), dns.RcodeNameError, "full.test.")
		wantNegative(t, ask(t, s, network, "app.full.test.", dns.TypeTXT), dns.RcodeSuccess, "full.test.")
		wantNegative(t, ask(t, s, network, "tunnel.culvert.test.", dns.TypeMX), dns.RcodeSuccess, "culvert.test.")
		wantNegative(t, ask(t, s, network, "culvert.test.", dns.TypeA), dns.RcodeSuccess, "culvert.test.")
		wantNegative(t, ask(t, s, network, "_culvert._tcp.culvert.test.", dns.TypeA), dns.RcodeSuccess, "culvert.test.")
		// empty non-terminals are NODATA
		for ent, apex := range map[string]string{
			"_tcp.culvert.test.":             "culvert.test.",
			"cdn.culvert.test.":              "culvert.test.",
			"lb.culvert.test.":               "culvert.test.",
			"example.test.cdn.culvert.test.": "culvert.test.",
			"test.cdn.culvert.test.":         "culvert.test.",
			"b.full.test.":                   "full.test.",
			"a.b.full.test.":                 "full.test.",
		} {
			wantNegative(t, ask(t, s, network, ent, dns.TypeA), dns.RcodeSuccess, apex)
			wantNegative(t, ask(t, s, network, ent, dns.TypeAAAA), dns.RcodeSuccess, apex)
		}
	}
}

func TestRefused(t *testing.T) {
	s := startServer(t, testData())
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"example.test.", "app.example.test.", "www.elsewhere.org.", "test.", ".", "culvert.test.evil."} {
			r := ask(t, s, network, name, dns.TypeA)
			wantRcode(t, r, dns.RcodeRefused)
			if r.Authoritative || len(r.Answer) != 0 || len(r.Ns) != 0 {
				t.Errorf("%s %s: %v", network, name, r)
			}
		}
	}
	// a full zone inside a partial one is ours again (longest match)
	d := testData()
	d.Zones = append(d.Zones, Zone{Name: "inner.example.test"})
	d.Records = append(d.Records, Record{Name: "x.inner.example.test", Type: "A", Values: []string{"192.0.2.77"}})
	s.Set(d)
	wantAnswer(t, ask(t, s, "udp", "x.inner.example.test.", dns.TypeA), dns.TypeA, "192.0.2.77")
	wantRcode(t, ask(t, s, "udp", "x.example.test.", dns.TypeA), dns.RcodeRefused)
}

func TestTruncation(t *testing.T) {
	s := startServer(t, testData())

	// 60 A records do not fit in 512 bytes
	r := ask(t, s, "udp", "big.full.test.", dns.TypeA)
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Fatalf("plain UDP: TC=%v with %d answers", r.Truncated, len(r.Answer))
	}
	r = ask(t, s, "udp", "big.full.test.", dns.TypeA, edns(600))
	if !r.Truncated {
		t.Fatalf("EDNS 600: not truncated (%d answers)", len(r.Answer))
	}
	if opt := r.IsEdns0(); opt == nil || opt.UDPSize() != ourUDPSize {
		t.Errorf("OPT not echoed on a truncated answer: %v", r.Extra)
	}
	// sizes below 512 count as 512
	r = ask(t, s, "udp", "big.full.test.", dns.TypeA, edns(100))
	if !r.Truncated || len(r.Answer) == 0 {
		t.Errorf("EDNS 100: TC=%v answers %d", r.Truncated, len(r.Answer))
	}
	// a large enough EDNS0 size: the whole answer over UDP
	r = ask(t, s, "udp", "big.full.test.", dns.TypeA, edns(4096))
	if r.Truncated || len(r.Answer) != 60 {
		t.Errorf("EDNS 4096: TC=%v answers %d", r.Truncated, len(r.Answer))
	}
	// TCP: the whole answer
	r = ask(t, s, "tcp", "big.full.test.", dns.TypeA)
	if r.Truncated || len(r.Answer) != 60 {
		t.Errorf("TCP: TC=%v answers %d", r.Truncated, len(r.Answer))
	}
	wantRcode(t, r, dns.RcodeSuccess)
	if r.IsEdns0() != nil {
		t.Errorf("OPT in the answer to a query without one")
	}
}

func TestFinishDropsAdditionalWithoutTC(t *testing.T) {
	// An answer that fits with only part of its glue: no TC, and no
	// partial RRset left in the additional section.
	snap, err := compile(&Data{
		Domain:  "culvert.test",
		Regions: []Region{{Name: "r1", Addrs: bigAddrs(20)}, {Name: "r2", Addrs: bigAddrs(20)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := new(dns.Msg).SetQuestion("_culvert._tcp.culvert.test.", dns.TypeSRV)
	m := answer(snap, req, true)
	if m.Truncated || len(m.Answer) != 2 {
		t.Fatalf("TC=%v answers %d", m.Truncated, len(m.Answer))
	}
	// r1's 20 addresses fit, r2's do not: none of them is sent
	if len(m.Extra) != 20 || m.Extra[19].Header().Name != "r1.culvert.test." {
		t.Errorf("glue: %d records, want r1's 20", len(m.Extra))
	}
	if buf, err := m.Pack(); err != nil || len(buf) > dns.MinMsgSize {
		t.Errorf("packed %d bytes, err %v", len(buf), err)
	}
}

func bigAddrs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i%250 + 1)})
	}
	return out
}

func TestEDNS(t *testing.T) {
	s := startServer(t, testData())
	r := ask(t, s, "udp", "tunnel.culvert.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1400, true) })
	opt := r.IsEdns0()
	if opt == nil || opt.UDPSize() != ourUDPSize || !opt.Do() || opt.Version() != 0 {
		t.Errorf("OPT echo %v", opt)
	}
	r = ask(t, s, "udp", "tunnel.culvert.test.", dns.TypeA, func(m *dns.Msg) {
		m.SetEdns0(1400, false)
		m.IsEdns0().SetVersion(1)
	})
	wantRcode(t, r, dns.RcodeBadVers)
}

func TestMalformedAndUnsupported(t *testing.T) {
	s := startServer(t, testData())
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg).SetQuestion("tunnel.culvert.test.", dns.TypeA)
		m.Question = append(m.Question, dns.Question{Name: "api.culvert.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		wantRcode(t, exchange(t, s, network, m), dns.RcodeFormatError)

		m = new(dns.Msg)
		m.Id = dns.Id()
		wantRcode(t, exchange(t, s, network, m), dns.RcodeFormatError)

		for _, op := range []int{dns.OpcodeStatus, dns.OpcodeNotify, dns.OpcodeUpdate, dns.OpcodeIQuery} {
			m = new(dns.Msg).SetQuestion("culvert.test.", dns.TypeSOA)
			m.Opcode = op
			r := exchange(t, s, network, m)
			wantRcode(t, r, dns.RcodeNotImplemented)
			if r.Opcode != op {
				t.Errorf("opcode %d answered with %d", op, r.Opcode)
			}
		}

		m = new(dns.Msg).SetQuestion("version.bind.", dns.TypeTXT)
		m.Question[0].Qclass = dns.ClassCHAOS
		wantRcode(t, exchange(t, s, network, m), dns.RcodeRefused)

		r := ask(t, s, network, "culvert.test.", dns.TypeAXFR)
		wantRcode(t, r, dns.RcodeRefused)
		r = ask(t, s, network, "culvert.test.", dns.TypeIXFR)
		wantRcode(t, r, dns.RcodeRefused)
	}
}

func TestANY(t *testing.T) {
	s := startServer(t, testData())
	r := ask(t, s, "tcp", "app.full.test.", dns.TypeANY)
	wantAnswer(t, r, dns.TypeA, "192.0.2.10")
	wantAnswer(t, r, dns.TypeAAAA, "2001:db8::10")
	r = ask(t, s, "udp", "culvert.test.", dns.TypeANY)
	if len(values(r.Answer, dns.TypeSOA)) != 1 || len(values(r.Answer, dns.TypeNS)) != 2 {
		t.Errorf("ANY at apex: %v", r.Answer)
	}
	r = ask(t, s, "udp", "www.full.test.", dns.TypeANY)
	wantAnswer(t, r, dns.TypeCNAME, "app.full.test.")
	if len(r.Answer) != 1 {
		t.Errorf("ANY at a CNAME: %v", r.Answer)
	}
	wantNegative(t, ask(t, s, "udp", "cdn.culvert.test.", dns.TypeANY), dns.RcodeSuccess, "culvert.test.")
	wantNegative(t, ask(t, s, "udp", "nope.culvert.test.", dns.TypeANY), dns.RcodeNameError, "culvert.test.")
}

func TestCaseInsensitive(t *testing.T) {
	d := testData()
	d.Domain = "Culvert.TEST."
	d.Zones = append(d.Zones, Zone{Name: "UPPER.test"})
	d.Records = append(d.Records, Record{Name: "Host.Upper.Test.", Type: "a", Values: []string{"192.0.2.55"}})
	d.CDNNames = append(d.CDNNames, "Mixed.Example.Test")
	s := startServer(t, d)
	r := ask(t, s, "udp", "ApP.FuLl.TeSt.", dns.TypeA)
	wantAnswer(t, r, dns.TypeA, "192.0.2.10")
	if r.Question[0].Name != "ApP.FuLl.TeSt." {
		t.Errorf("question not echoed as asked: %v", r.Question)
	}
	wantAnswer(t, ask(t, s, "udp", "host.upper.test.", dns.TypeA), dns.TypeA, "192.0.2.55")
	wantAnswer(t, ask(t, s, "udp", "TUNNEL.culvert.test.", dns.TypeA), dns.TypeA, "192.0.2.1")
	wantAnswer(t, ask(t, s, "tcp", "mixed.example.test.CDN.culvert.test.", dns.TypeA), dns.TypeA, "192.0.2.1")
	wantAnswer(t, ask(t, s, "udp", "_CULVERT._TCP.culvert.test.", dns.TypeSRV), dns.TypeSRV,
		"1 1 7844 region1.culvert.test.", "1 1 7844 region2.culvert.test.")
	wantRcode(t, ask(t, s, "udp", "APP.EXAMPLE.TEST.", dns.TypeA), dns.RcodeRefused)
}

func TestReload(t *testing.T) {
	var cur atomic.Pointer[Data]
	var fail atomic.Bool
	cur.Store(testData())
	s := New(Config{
		Addr:   "127.0.0.1:0",
		Logger: quiet,
		Load: func() (*Data, error) {
			if fail.Load() {
				return nil, errors.New("store down")
			}
			return cur.Load(), nil
		},
		Refresh: time.Hour, // only Reload triggers a load in this test
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantNegative(t, ask(t, s, "udp", "new.full.test.", dns.TypeA), dns.RcodeNameError, "full.test.")
	serial := soaSerial(t, s)

	d := testData()
	d.Records = append(d.Records, Record{Name: "new.full.test", Type: "A", Values: []string{"192.0.2.123"}})
	cur.Store(d)
	s.Reload()
	s.Reload() // coalesced, never blocks
	waitFor(t, func() bool { return ask(t, s, "udp", "new.full.test.", dns.TypeA).Rcode == dns.RcodeSuccess })
	wantAnswer(t, ask(t, s, "udp", "new.full.test.", dns.TypeA), dns.TypeA, "192.0.2.123")
	if got := soaSerial(t, s); got <= serial {
		t.Errorf("serial %d after reload, want > %d", got, serial)
	}

	// A failing Load keeps the data served.
	fail.Store(true)
	s.Reload()
	time.Sleep(50 * time.Millisecond)
	wantAnswer(t, ask(t, s, "udp", "new.full.test.", dns.TypeA), dns.TypeA, "192.0.2.123")
}

func TestRefreshInterval(t *testing.T) {
	var cur atomic.Pointer[Data]
	cur.Store(testData())
	s := New(Config{Addr: "127.0.0.1:0", Logger: quiet, Refresh: 20 * time.Millisecond,
		Load: func() (*Data, error) { return cur.Load(), nil }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := testData()
	d.Pools = []string{"later"}
	cur.Store(d)
	waitFor(t, func() bool { return ask(t, s, "udp", "later.lb.culvert.test.", dns.TypeA).Rcode == dns.RcodeSuccess })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartErrors(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", Logger: quiet, Load: func() (*Data, error) { return nil, io.ErrUnexpectedEOF }})
	if err := s.Start(); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Start with a failing Load: %v", err)
	}
	s.Close()

	s = New(Config{Addr: "127.0.0.1:0", Logger: quiet, Load: func() (*Data, error) { return &Data{}, nil }})
	if err := s.Start(); err == nil {
		t.Error("Start with no Domain: no error")
	}
	s.Close()

	// A fixed port taken for TCP fails Start cleanly.
	a := startServer(t, testData())
	b := New(Config{Addr: a.Addr(), Logger: quiet})
	if err := b.Start(); err == nil {
		t.Error("Start on a port in use: no error")
	}
	b.Close()

	// Start after Close fails; Close twice is fine.
	c := New(Config{Addr: "127.0.0.1:0", Logger: quiet})
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if err := c.Start(); err == nil {
		t.Error("Start after Close: no error")
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

func TestNoDataRefusesAll(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", Logger: quiet}) // no Load, no Set
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantRcode(t, ask(t, s, "udp", "culvert.test.", dns.TypeSOA), dns.RcodeRefused)
	s.Set(testData())
	wantAnswer(t, ask(t, s, "udp", "tunnel.culvert.test.", dns.TypeA), dns.TypeA, "192.0.2.1")
	s.Set(&Data{Domain: "bad..name"})
	wantRcode(t, ask(t, s, "udp", "tunnel.culvert.test.", dns.TypeA), dns.RcodeRefused)
	s.Set(nil)
	wantRcode(t, ask(t, s, "udp", "tunnel.culvert.test.", dns.TypeA), dns.RcodeRefused)
}

func TestCompileLeavesOutBadEntries(t *testing.T) {
	snap, err := compile(&Data{
		Domain: "culvert.test",
		Zones:  []Zone{{Name: "full.test"}, {Name: "bad..zone"}},
		Regions: []Region{
			{Name: ""}, {Name: "ok", Addrs: addrs("192.0.2.5")},
		},
		Records: []Record{
			{Name: "a.full.test", Type: "A", Values: []string{"2001:db8::1", "not-an-ip", "192.0.2.6"}},
			{Name: "b.full.test", Type: "AAAA", Values: []string{"192.0.2.7", "::ffff:192.0.2.7"}},
			{Name: "c.full.test", Type: "TXT", Values: []string{"x"}},
			{Name: "full.test", Type: "CNAME", Values: []string{"elsewhere.org"}},
			{Name: "d.full.test", Type: "CNAME", Values: []string{"x.org", "y.org"}},
			{Name: "e.full.test", Type: "CNAME", Values: []string{"x.org"}},
			{Name: "e.full.test", Type: "A", Values: []string{"192.0.2.8"}},
			{Name: "ns1.culvert.test", Type: "A", Values: []string{"192.0.2.9"}},
			{Name: "outside.org", Type: "A", Values: []string{"192.0.2.10"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.skipped) < 9 {
		t.Errorf("skipped %d entries: %q", len(snap.skipped), snap.skipped)
	}
	check := func(name string, qtype uint16, want ...string) {
		t.Helper()
		req := new(dns.Msg).SetQuestion(name, qtype)
		m := answer(snap, req, false)
		if got := values(m.Answer, qtype); !slices.Equal(got, want) {
			t.Errorf("%s %s: %q, want %q", name, dns.TypeToString[qtype], got, want)
		}
	}
	check("a.full.test.", dns.TypeA, "192.0.2.6")
	check("b.full.test.", dns.TypeAAAA)
	check("e.full.test.", dns.TypeA)
	check("e.full.test.", dns.TypeCNAME, "x.org.")
	check("ns1.culvert.test.", dns.TypeA)
	check("ok.culvert.test.", dns.TypeA, "192.0.2.5")
}
