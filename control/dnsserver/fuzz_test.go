package dnsserver

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// fakeWriter is an in-process dns.ResponseWriter that keeps what is
// written.
type fakeWriter struct {
	network string
	msgs    []*dns.Msg
}

func (w *fakeWriter) LocalAddr() net.Addr {
	if w.network == "udp" {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (w *fakeWriter) RemoteAddr() net.Addr {
	if w.network == "udp" {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}

func (w *fakeWriter) WriteMsg(m *dns.Msg) error { w.msgs = append(w.msgs, m); return nil }
func (w *fakeWriter) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msgs = append(w.msgs, m)
	return len(b), nil
}
func (w *fakeWriter) Close() error        { return nil }
func (w *fakeWriter) TsigStatus() error   { return nil }
func (w *fakeWriter) TsigTimersOnly(bool) {}
func (w *fakeWriter) Hijack()             {}
func (w *fakeWriter) Network() string     { return w.network }

func packed(t interface{ Fatal(...any) }, name string, qtype uint16, edit func(*dns.Msg)) []byte {
	m := new(dns.Msg).SetQuestion(name, qtype)
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzServeDNS feeds arbitrary bytes, parsed as a query, to the handler:
// it must not panic, and whatever it answers must pack within the size
// limit of the transport.
func FuzzServeDNS(f *testing.F) {
	withEDNS := func(size uint16) func(*dns.Msg) { return func(m *dns.Msg) { m.SetEdns0(size, true) } }
	f.Add(packed(f, "tunnel.culvert.test.", dns.TypeA, nil))
	f.Add(packed(f, "_culvert._tcp.culvert.test.", dns.TypeSRV, withEDNS(1232)))
	f.Add(packed(f, "big.full.test.", dns.TypeA, nil))
	f.Add(packed(f, "big.full.test.", dns.TypeA, withEDNS(700)))
	f.Add(packed(f, "chain.full.test.", dns.TypeAAAA, nil))
	f.Add(packed(f, "loop1.full.test.", dns.TypeA, nil))
	f.Add(packed(f, "APP.example.test.", dns.TypeA, nil))
	f.Add(packed(f, "culvert.test.", dns.TypeANY, nil))
	f.Add(packed(f, "culvert.test.", dns.TypeAXFR, nil))
	f.Add(packed(f, "nope.full.test.", dns.TypeMX, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }))
	f.Add(packed(f, "b.full.test.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(512, false); m.IsEdns0().SetVersion(3) }))
	f.Add(packed(f, ".", dns.TypeNS, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }))
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1})

	s := New(Config{Logger: quiet})
	s.Set(testData())
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return // the dns server answers FORMERR (or nothing) before the handler
		}
		for _, network := range []string{"udp", "tcp"} {
			w := &fakeWriter{network: network}
			s.serveDNS(w, req)
			if req.Response {
				if len(w.msgs) != 0 {
					t.Fatal("answered a response")
				}
				continue
			}
			if len(w.msgs) != 1 {
				t.Fatalf("%s: %d replies", network, len(w.msgs))
			}
			out, err := w.msgs[0].Pack()
			if err != nil {
				t.Fatalf("%s: reply does not pack: %v\n%v", network, err, w.msgs[0])
			}
			limit := dns.MaxMsgSize
			if network == "udp" {
				limit = maxUDPSize
				if req.IsEdns0() == nil {
					limit = dns.MinMsgSize
				}
			}
			if len(out) > limit {
				t.Fatalf("%s: reply of %d bytes, limit %d", network, len(out), limit)
			}
			if w.msgs[0].Id != req.Id || w.msgs[0].RecursionAvailable {
				t.Fatalf("%s: bad header %v", network, w.msgs[0].MsgHdr)
			}
		}
	})
}
