package dnsserver

import (
	"slices"

	"github.com/miekg/dns"
)

const (
	// maxChase bounds how many CNAMEs in a row are followed inside our
	// authorities.
	maxChase = 8
	// ourUDPSize is the EDNS0 payload size this server advertises, and the
	// buffer it reads UDP queries into (the DNS Flag Day 2020 value).
	ourUDPSize = 1232
	// maxUDPSize caps the client's advertised size for answers over UDP.
	maxUDPSize = 4096
)

// acceptMsg screens a query by its header before the rest is parsed:
// responses are dropped, a question count other than one and sections a
// query has no use for are FORMERR. Other opcodes reach the handler, which
// answers NOTIMP with the opcode and any OPT echoed.
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if dh.Qdcount != 1 || dh.Ancount > 1 || dh.Nscount > 1 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// serveDNS is the dns.Handler of both listeners.
func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := answer(s.snap.Load(), req, isUDP(w))
	if m == nil {
		return
	}
	_ = w.WriteMsg(m) // nothing to do about a client that went away
}

func isUDP(w dns.ResponseWriter) bool {
	a := w.RemoteAddr()
	return a != nil && a.Network() == "udp"
}

// answer builds the response to req from snap; nil means send nothing.
func answer(snap *snapshot, req *dns.Msg, udp bool) *dns.Msg {
	if req == nil || req.Response {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	m.Compress = true

	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
	}
	var opt *dns.OPT
	nopt := 0
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			opt = o
			nopt++
		}
	}
	if opt != nil {
		ro := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		ro.SetUDPSize(ourUDPSize)
		if opt.Do() {
			ro.SetDo() // RFC 3225: copied, though nothing here is signed
		}
		m.Extra = append(m.Extra, ro)
		if udp {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
		if nopt > 1 {
			return finish(errorReply(m, dns.RcodeFormatError), size)
		}
		if opt.Version() != 0 {
			return finish(errorReply(m, dns.RcodeBadVers), size)
		}
	}
	if req.Opcode != dns.OpcodeQuery {
		return finish(errorReply(m, dns.RcodeNotImplemented), size)
	}
	if len(req.Question) != 1 {
		m.Question = nil
		return finish(errorReply(m, dns.RcodeFormatError), size)
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET {
		return finish(errorReply(m, dns.RcodeRefused), size)
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return finish(errorReply(m, dns.RcodeRefused), size) // no zone transfers
	case dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		return finish(errorReply(m, dns.RcodeNotImplemented), size)
	}
	if snap == nil {
		return finish(errorReply(m, dns.RcodeRefused), size)
	}
	qname := canon(q.Name)
	apex, partial, ok := snap.authority(qname)
	if !ok || partial {
		return finish(errorReply(m, dns.RcodeRefused), size)
	}
	m.Authoritative = true
	snap.resolve(m, qname, q.Qtype, apex)
	snap.additional(m)
	return finish(m, size)
}

func errorReply(m *dns.Msg, rcode int) *dns.Msg {
	m.Rcode = rcode
	m.Authoritative = false
	return m
}

// resolve fills the answer (and on a negative answer the authority)
// section for qname, following CNAMEs that stay inside our authorities.
func (s *snapshot) resolve(m *dns.Msg, qname string, qtype uint16, apex string) {
	visited := map[string]bool{}
	name := qname
	for depth := 0; ; depth++ {
		visited[name] = true
		n := s.names[name]
		if n == nil {
			m.Rcode = dns.RcodeNameError
			s.negative(m, apex)
			return
		}
		if cname, ok := n.rrsets[dns.TypeCNAME]; ok && qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, cname...)
			if qtype == dns.TypeANY {
				return
			}
			target := cname[0].(*dns.CNAME).Target
			tapex, partial, ok := s.authority(target)
			if !ok || partial || visited[target] || depth+1 >= maxChase {
				return // the client follows it (or a loop ends here)
			}
			name, apex = target, tapex
			continue
		}
		found := false
		if qtype == dns.TypeANY {
			// RFC 8482 allows a minimal answer; these RRsets are few and
			// small, so ANY gets everything at the name.
			types := make([]uint16, 0, len(n.rrsets))
			for t := range n.rrsets {
				types = append(types, t)
			}
			slices.Sort(types)
			for _, t := range types {
				m.Answer = append(m.Answer, n.rrsets[t]...)
			}
			found = len(types) > 0
		} else if rrs := n.rrsets[qtype]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			found = true
		}
		if !found {
			s.negative(m, apex) // NODATA
		}
		return
	}
}

// negative puts the authority's SOA in the authority section (RFC 2308).
func (s *snapshot) negative(m *dns.Msg, apex string) {
	if soa := s.soa(apex); soa != nil {
		m.Ns = append(m.Ns, soa)
	}
}

// additional adds the addresses of NS and SRV targets that we serve.
func (s *snapshot) additional(m *dns.Msg) {
	seen := map[string]bool{}
	for _, rr := range m.Answer {
		var target string
		switch rr := rr.(type) {
		case *dns.NS:
			target = rr.Ns
		case *dns.SRV:
			target = rr.Target
		default:
			continue
		}
		if seen[target] {
			continue
		}
		seen[target] = true
		if _, partial, ok := s.authority(target); !ok || partial {
			continue
		}
		if n := s.names[target]; n != nil {
			m.Extra = append(m.Extra, n.rrsets[dns.TypeA]...)
			m.Extra = append(m.Extra, n.rrsets[dns.TypeAAAA]...)
		}
	}
}

// finish fits m into size bytes. TC is set only when the answer or
// authority section did not fit; additional records that do not fit are
// left out without it (RFC 2181 9), whole RRsets at a time.
func finish(m *dns.Msg, size int) *dns.Msg {
	nAns, nNs := len(m.Answer), len(m.Ns)
	type key struct {
		name string
		t    uint16
	}
	count := func(rrs []dns.RR) map[key]int {
		c := map[key]int{}
		for _, rr := range rrs {
			h := rr.Header()
			c[key{h.Name, h.Rrtype}]++
		}
		return c
	}
	before := count(m.Extra)
	m.Truncate(size)
	if m.Truncated && len(m.Answer) == nAns && len(m.Ns) == nNs {
		m.Truncated = false
		after := count(m.Extra)
		kept := m.Extra[:0]
		for _, rr := range m.Extra {
			h := rr.Header()
			if k := (key{h.Name, h.Rrtype}); after[k] == before[k] {
				kept = append(kept, rr)
			}
		}
		m.Extra = kept
	}
	return m
}
