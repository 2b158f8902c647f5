package connector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// discoveryTimeout bounds DiscoverEdges when its context has no deadline.
const discoveryTimeout = 5 * time.Second

// srvTarget is one SRV record with the addresses of its target.
type srvTarget struct {
	priority, weight, port uint16
	target                 string
	addrs                  []netip.Addr
}

// DiscoverEdges looks up the SRV record _culvert._tcp.<domain> and returns
// the edges' tunnel addresses as "ip:port", regions interleaved (first
// address of each region in SRV priority/weight order, then the second of
// each, ...) so that connection i mod n spreads over regions.
//
// resolver is the "host:port" of a DNS server to ask directly (UDP, then
// TCP when the answer is truncated); the addresses come from the SRV
// answer's additional section, or else from A and AAAA queries to the same
// server. Records of equal priority are ordered by weight, heaviest first,
// and otherwise keep the server's order. An empty resolver means the
// system resolver, which orders records of equal priority at random by
// weight (RFC 2782). A target of "." (service not offered) is skipped. If
// ctx has no deadline the lookup is bounded by 5 seconds.
func DiscoverEdges(ctx context.Context, resolver, domain string) ([]string, error) {
	domain = strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if domain == "" {
		return nil, errors.New("edge discovery: empty domain")
	}
	name := "_culvert._tcp." + domain + "."
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, discoveryTimeout)
		defer cancel()
	}
	from := "the system resolver"
	if resolver != "" {
		from = resolver
	}

	var targets []srvTarget
	var err error
	if resolver == "" {
		targets, err = discoverSystem(ctx, domain)
	} else {
		targets, err = discoverDirect(ctx, resolver, name)
	}
	if err != nil {
		return nil, fmt.Errorf("edge discovery: SRV %s from %s: %w", name, from, err)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("edge discovery: no SRV records for %s from %s", name, from)
	}
	out := interleave(targets)
	if len(out) == 0 {
		return nil, fmt.Errorf("edge discovery: SRV %s from %s: no addresses for targets %s", name, from, targetNames(targets))
	}
	return out, nil
}

// interleave takes the first address of every target, then the second, ...
func interleave(targets []srvTarget) []string {
	var out []string
	seen := map[string]bool{}
	for round := 0; ; round++ {
		more := false
		for _, t := range targets {
			if round >= len(t.addrs) {
				continue
			}
			more = true
			a := netip.AddrPortFrom(t.addrs[round], t.port).String()
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
		if !more {
			return out
		}
	}
}

func targetNames(targets []srvTarget) string {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.target
	}
	return strings.Join(names, ", ")
}

// discoverSystem uses the system resolver.
func discoverSystem(ctx context.Context, domain string) ([]srvTarget, error) {
	_, srvs, err := net.DefaultResolver.LookupSRV(ctx, "culvert", "tcp", domain)
	if err != nil && len(srvs) == 0 {
		return nil, err
	}
	var targets []srvTarget
	for _, s := range srvs {
		if s.Target == "." || s.Target == "" {
			continue
		}
		t := srvTarget{priority: s.Priority, weight: s.Weight, port: s.Port, target: s.Target}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(s.Target, "."))
		if err == nil {
			t.addrs = addUnique(nil, ips...)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// discoverDirect asks the DNS server at resolver.
func discoverDirect(ctx context.Context, resolver, name string) ([]srvTarget, error) {
	if _, _, err := net.SplitHostPort(resolver); err != nil {
		return nil, fmt.Errorf("resolver %q: %w", resolver, err)
	}
	r, err := exchange(ctx, resolver, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("server answered %s", rcodeName(r.Rcode))
	}
	glue := map[string][]netip.Addr{}
	for _, rr := range r.Extra {
		switch rr := rr.(type) {
		case *dns.A:
			k := dns.CanonicalName(rr.Hdr.Name)
			glue[k] = addUnique(glue[k], ipAddr(rr.A))
		case *dns.AAAA:
			k := dns.CanonicalName(rr.Hdr.Name)
			glue[k] = addUnique(glue[k], ipAddr(rr.AAAA))
		}
	}
	var targets []srvTarget
	for _, rr := range r.Answer {
		s, ok := rr.(*dns.SRV)
		if !ok || !strings.EqualFold(s.Hdr.Name, name) || s.Target == "." {
			continue
		}
		target := dns.CanonicalName(s.Target)
		t := srvTarget{priority: s.Priority, weight: s.Weight, port: s.Port, target: target, addrs: glue[target]}
		if len(t.addrs) == 0 {
			t.addrs = lookupAddrs(ctx, resolver, target)
		}
		targets = append(targets, t)
	}
	slices.SortStableFunc(targets, func(a, b srvTarget) int {
		if c := cmp.Compare(a.priority, b.priority); c != 0 {
			return c
		}
		return cmp.Compare(b.weight, a.weight)
	})
	return targets, nil
}

// lookupAddrs asks resolver for the A, then AAAA, records of target.
func lookupAddrs(ctx context.Context, resolver, target string) []netip.Addr {
	var out []netip.Addr
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := exchange(ctx, resolver, target, qtype)
		if err != nil || r.Rcode != dns.RcodeSuccess {
			continue
		}
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				out = addUnique(out, ipAddr(rr.A))
			case *dns.AAAA:
				out = addUnique(out, ipAddr(rr.AAAA))
			}
		}
	}
	return out
}

// exchange sends one query to server over UDP, and over TCP again when the
// answer comes back truncated. ctx (which has a deadline) bounds both.
func exchange(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	r, err := exchangeOver(ctx, "udp", server, m)
	if err == nil && r.Truncated {
		r, err = exchangeOver(ctx, "tcp", server, m)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	return r, nil
}

func exchangeOver(ctx context.Context, network, server string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: network}
	co, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	// The client takes ctx's deadline; this also ends the wait on a plain
	// cancel.
	stop := context.AfterFunc(ctx, func() { co.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, co)
	return r, err
}

func ipAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// addUnique appends the valid addresses not already in list.
func addUnique(list []netip.Addr, addrs ...netip.Addr) []netip.Addr {
	for _, a := range addrs {
		a = a.Unmap()
		if a.IsValid() && !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}

func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(rcode)
}
