package dnsserver

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Region is a discovery region: "<Name>.<Domain>" answers Addrs and the
// SRV record _culvert._tcp.<Domain> names it as a target.
type Region struct {
	Name  string // e.g. "region1"
	Addrs []netip.Addr
}

// Zone is a customer zone the edge knows. A full zone (Partial false) is
// served by this server; a partial zone is hosted by the customer's own DNS
// provider, which points the zone's hostnames at "<host>.cdn.<Domain>", and
// queries for it are refused here.
type Zone struct {
	Name    string // lowercase, no trailing dot
	Partial bool
}

// Record is an RRset in a full zone, typically a tunnel hostname.
type Record struct {
	Name   string
	Type   string   // "A", "AAAA" or "CNAME"
	Values []string // IP addresses, or one FQDN target for a CNAME (trailing dot optional)
}

// Data is one immutable snapshot of everything the server answers. The
// server never changes a Data it was given, and callers must not change one
// after handing it over.
type Data struct {
	Domain     string       // the edge's own domain, e.g. "culvert.test"
	EdgeAddrs  []netip.Addr // the edge's public addresses (IPv6 and/or IPv4)
	Regions    []Region     // discovery regions; SRV targets
	TunnelPort uint16       // port in the SRV records (default 7844)
	Zones      []Zone       // customer zones the edge knows
	Records    []Record     // records in full zones (tunnel hostnames)
	CDNNames   []string     // hostnames of tunnels in partial zones: "<host>.cdn.<Domain>" answers EdgeAddrs
	Pools      []string     // load-balancer pool names: "<pool>.lb.<Domain>" answers EdgeAddrs
	TTL        uint32       // TTL of every record, and the negative-caching TTL (default 60)
}

// DefaultTunnelPort is the SRV port when Data.TunnelPort is 0.
const DefaultTunnelPort = 7844

// DefaultTTL is the TTL when Data.TTL is 0.
const DefaultTTL = 60

// SRVName is the discovery service label pair: the SRV record lives at
// SRVName + "." + Domain.
const SRVName = "_culvert._tcp"

// SOA timers. Nothing transfers these zones (no secondaries), so refresh,
// retry and expire are informative; the minimum (negative caching TTL) is
// the data's TTL so that a newly created tunnel hostname is not hidden by a
// cached NXDOMAIN for long.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 1209600
)

// node is one owner name inside an authority. A node without rrsets is an
// empty non-terminal: it exists (NODATA, not NXDOMAIN) because names below
// it do.
type node struct {
	rrsets map[uint16][]dns.RR
}

// snapshot is a compiled Data: every answer is a map lookup.
type snapshot struct {
	domain  string          // fqdn, lowercase; "" for the empty snapshot
	apexes  map[string]bool // authority apex (fqdn) -> partial
	names   map[string]*node
	hash    uint64 // content hash, without the SOA serial
	serial  uint32
	ttl     uint32
	skipped []string // what compile left out, and why (logged by the caller)
}

func emptySnapshot() *snapshot {
	return &snapshot{apexes: map[string]bool{}, names: map[string]*node{}}
}

// canon lowercases a name and makes it fully qualified.
func canon(name string) string {
	return dns.CanonicalName(strings.TrimSpace(name))
}

// validName reports whether fqdn is a syntactically valid domain name.
func validName(fqdn string) bool {
	_, ok := dns.IsDomainName(fqdn)
	return ok && fqdn != "."
}

// inside reports whether name is apex or below it (both canonical fqdns).
func inside(name, apex string) bool {
	return dns.IsSubDomain(apex, name)
}

// compile turns a Data into a snapshot. It fails only when the edge's own
// Domain is missing or invalid; bad entries elsewhere are left out and
// listed in skipped.
func compile(d *Data) (*snapshot, error) {
	if d == nil {
		return nil, errors.New("dnsserver: nil data")
	}
	domain := canon(d.Domain)
	if d.Domain == "" || !validName(domain) {
		return nil, fmt.Errorf("dnsserver: invalid domain %q", d.Domain)
	}
	s := &snapshot{
		domain: domain,
		apexes: map[string]bool{domain: false},
		names:  map[string]*node{},
		ttl:    d.TTL,
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	port := d.TunnelPort
	if port == 0 {
		port = DefaultTunnelPort
	}
	skip := func(format string, args ...any) { s.skipped = append(s.skipped, fmt.Sprintf(format, args...)) }

	for _, z := range d.Zones {
		apex := canon(z.Name)
		if !validName(apex) {
			skip("zone %q: invalid name", z.Name)
			continue
		}
		if apex == domain {
			continue // the edge's own domain is always authoritative
		}
		if partial, seen := s.apexes[apex]; seen {
			s.apexes[apex] = partial && z.Partial // full wins over partial
			continue
		}
		s.apexes[apex] = z.Partial
	}

	ns1, ns2 := "ns1."+domain, "ns2."+domain
	edge := func(name string) {
		s.touch(name)
		s.addAddrs(name, d.EdgeAddrs)
	}

	// Apex SOA and NS of every authority (the serial is filled in later).
	for apex, partial := range s.apexes {
		if partial {
			continue
		}
		s.add(&dns.SOA{
			Hdr:     s.hdr(apex, dns.TypeSOA),
			Ns:      ns1,
			Mbox:    "hostmaster." + domain,
			Refresh: soaRefresh,
			Retry:   soaRetry,
			Expire:  soaExpire,
			Minttl:  s.ttl,
		})
		s.add(&dns.NS{Hdr: s.hdr(apex, dns.TypeNS), Ns: ns1})
		s.add(&dns.NS{Hdr: s.hdr(apex, dns.TypeNS), Ns: ns2})
	}

	// The edge's own names.
	for _, n := range []string{ns1, ns2, "tunnel." + domain, "api." + domain} {
		edge(n)
	}
	srvName := SRVName + "." + domain
	for _, r := range d.Regions {
		name := canon(r.Name + "." + domain)
		if r.Name == "" || !validName(name) || !inside(name, domain) {
			skip("region %q: invalid name", r.Name)
			continue
		}
		s.touch(name)
		s.addAddrs(name, r.Addrs)
		s.add(&dns.SRV{
			Hdr:      s.hdr(srvName, dns.TypeSRV),
			Priority: 1,
			Weight:   1,
			Port:     port,
			Target:   name,
		})
	}
	s.touch(srvName)
	for _, h := range d.CDNNames {
		name := canon(strings.TrimSuffix(strings.TrimSpace(h), ".") + ".cdn." + domain)
		if strings.TrimSpace(h) == "" || !validName(name) {
			skip("cdn name %q: invalid", h)
			continue
		}
		edge(name)
	}
	for _, p := range d.Pools {
		name := canon(strings.TrimSuffix(strings.TrimSpace(p), ".") + ".lb." + domain)
		if strings.TrimSpace(p) == "" || !validName(name) {
			skip("pool %q: invalid name", p)
			continue
		}
		edge(name)
	}

	// Records of full zones.
	for _, r := range d.Records {
		name := canon(r.Name)
		if !validName(name) {
			skip("record %q: invalid name", r.Name)
			continue
		}
		apex, partial, ok := s.authority(name)
		if !ok || partial {
			skip("record %q: not in a full zone", r.Name)
			continue
		}
		if name == ns1 || name == ns2 || name == srvName {
			skip("record %q: reserved for the edge", r.Name)
			continue
		}
		switch strings.ToUpper(strings.TrimSpace(r.Type)) {
		case "A", "AAAA":
			want4 := strings.EqualFold(strings.TrimSpace(r.Type), "A")
			var addrs []netip.Addr
			for _, v := range r.Values {
				a, err := netip.ParseAddr(strings.TrimSpace(v))
				if err != nil || a.Zone() != "" || a.Unmap().Is4() != want4 {
					skip("record %q %s: bad value %q", r.Name, r.Type, v)
					continue
				}
				addrs = append(addrs, a)
			}
			s.touch(name)
			s.addAddrs(name, addrs)
		case "CNAME":
			if name == apex {
				skip("record %q CNAME: not allowed at a zone apex", r.Name)
				continue
			}
			if len(r.Values) != 1 {
				skip("record %q CNAME: want exactly one target, have %d", r.Name, len(r.Values))
				continue
			}
			target := canon(r.Values[0])
			if !validName(target) {
				skip("record %q CNAME: bad target %q", r.Name, r.Values[0])
				continue
			}
			s.touch(name)
			s.add(&dns.CNAME{Hdr: s.hdr(name, dns.TypeCNAME), Target: target})
		default:
			skip("record %q: unsupported type %q", r.Name, r.Type)
		}
	}

	// A CNAME excludes all other data at its name (RFC 1034 3.6.2).
	for name, n := range s.names {
		if _, ok := n.rrsets[dns.TypeCNAME]; ok && len(n.rrsets) > 1 {
			skip("name %q: other data beside its CNAME dropped", name)
			n.rrsets = map[uint16][]dns.RR{dns.TypeCNAME: n.rrsets[dns.TypeCNAME]}
		}
	}

	// Empty non-terminals: every ancestor of an owner name up to its
	// authority's apex exists.
	owners := make([]string, 0, len(s.names))
	for name := range s.names {
		owners = append(owners, name)
	}
	for _, name := range owners {
		apex, _, _ := s.authority(name)
		for p := parent(name); p != "" && inside(p, apex) && p != apex; p = parent(p) {
			s.touch(p)
		}
	}

	s.hash = s.contentHash()
	return s, nil
}

// parent returns the name with its first label removed, "" above the root.
func parent(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return ""
	}
	return name[off:]
}

func (s *snapshot) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.ttl}
}

// touch makes name exist.
func (s *snapshot) touch(name string) *node {
	n := s.names[name]
	if n == nil {
		n = &node{}
		s.names[name] = n
	}
	return n
}

// add adds rr to its RRset unless an identical record is there.
func (s *snapshot) add(rr dns.RR) {
	n := s.touch(rr.Header().Name)
	if n.rrsets == nil {
		n.rrsets = map[uint16][]dns.RR{}
	}
	t := rr.Header().Rrtype
	for _, have := range n.rrsets[t] {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	n.rrsets[t] = append(n.rrsets[t], rr)
}

// addAddrs adds A records for IPv4 (and IPv4-mapped IPv6) addresses and
// AAAA records for IPv6 ones.
func (s *snapshot) addAddrs(name string, addrs []netip.Addr) {
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap()
		if a.Is4() {
			s.add(&dns.A{Hdr: s.hdr(name, dns.TypeA), A: a.AsSlice()})
		} else {
			s.add(&dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: a.WithZone("").AsSlice()})
		}
	}
}

// authority finds the longest authority (full or partial) that name is in.
func (s *snapshot) authority(name string) (apex string, partial, ok bool) {
	for n := name; n != ""; n = parent(n) {
		if p, found := s.apexes[n]; found {
			return n, p, true
		}
	}
	return "", false, false
}

// contentHash hashes every record (in a stable order) and every name, so
// that any change of what the server answers changes it.
func (s *snapshot) contentHash() uint64 {
	lines := make([]string, 0, len(s.names)*2)
	for name, n := range s.names {
		lines = append(lines, name)
		for _, rrs := range n.rrsets {
			for _, rr := range rrs {
				lines = append(lines, rr.String())
			}
		}
	}
	for apex, partial := range s.apexes {
		lines = append(lines, fmt.Sprintf("apex %s %v", apex, partial))
	}
	slices.Sort(lines)
	h := fnv.New64a()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return h.Sum64()
}

// setSerial writes serial into every SOA record. Called once, before the
// snapshot is published.
func (s *snapshot) setSerial(serial uint32) {
	s.serial = serial
	for apex, partial := range s.apexes {
		if partial {
			continue
		}
		for _, rr := range s.names[apex].rrsets[dns.TypeSOA] {
			rr.(*dns.SOA).Serial = serial
		}
	}
}

// soa returns the SOA record of an authority apex.
func (s *snapshot) soa(apex string) dns.RR {
	if n := s.names[apex]; n != nil {
		if rrs := n.rrsets[dns.TypeSOA]; len(rrs) > 0 {
			return rrs[0]
		}
	}
	return nil
}
