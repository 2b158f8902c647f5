package control

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/culvert-tunnel/culvert/control/dnsserver"
)

// Default delay before the DNS records of a tunnel whose last connection
// ended are deleted: a random time in [24 h, 48 h].
const (
	DefaultRecordDeleteMin = 24 * time.Hour
	DefaultRecordDeleteMax = 48 * time.Hour
)

// Audit event kinds of the DNS side.
const (
	AuditCNAMEAdd      = "CNAME add" // a CNAME or an A/AAAA record was created or changed
	AuditRecordDeleted = "DNS record deleted"
	AuditTunnelDeleted = "TunnelDeleted"
)

// CDNName is the name a partial zone's user points a CNAME at for
// hostname: "app.example.com.cdn.<edge domain>".
func (e *Edge) CDNName(hostname string) string { return hostname + ".cdn." + e.Domain }

// PoolName is the CNAME target of a load-balanced tunnel's hostname.
func (e *Edge) PoolName(pool string) string { return pool + ".lb." + e.Domain }

// publicAddrs are the addresses the records of full zones point at.
func (e *Edge) publicAddrs() []netip.Addr {
	if len(e.PublicAddrs) > 0 {
		return e.PublicAddrs
	}
	return []netip.Addr{netip.IPv6Loopback(), netip.AddrFrom4([4]byte{127, 0, 0, 1})}
}

// wantRecords are the records a tunnel in a full zone gets: a CNAME to
// its pool's name, or AAAA to the edge's IPv6 addresses and A to its IPv4
// ones.
func (e *Edge) wantRecords(t Tunnel) []DNSRecord {
	base := DNSRecord{Name: t.Hostname, ZoneID: t.ZoneID, AccountID: t.AccountID, TunnelID: t.ID}
	if t.LBPool != "" {
		r := base
		r.Type, r.Values = "CNAME", []string{e.PoolName(t.LBPool) + "."}
		return []DNSRecord{r}
	}
	var v6, v4 []string
	for _, a := range e.publicAddrs() {
		if a.Unmap().Is4() {
			v4 = append(v4, a.Unmap().String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	var out []DNSRecord
	if len(v6) > 0 {
		r := base
		r.Type, r.Values = "AAAA", v6
		out = append(out, r)
	}
	if len(v4) > 0 {
		r := base
		r.Type, r.Values = "A", v4
		out = append(out, r)
	}
	return out
}

// ensureRecords makes the store hold exactly the records t needs (and no
// other record at its name), with no deletion pending. Each record made or
// changed is audited as CNAME add. It returns a description for the
// connector.
func (e *Edge) ensureRecords(t Tunnel, actor string) (string, error) {
	want := e.wantRecords(t)
	have, err := e.Store.RecordsByName(t.Hostname)
	if err != nil {
		return "", err
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w DNSRecord) bool { return w.Type == h.Type }) {
			if err := e.Store.DeleteRecord(h.Name, h.Type); err != nil && !errors.Is(err, ErrNotFound) {
				return "", err
			}
			e.audit(h.AccountID, AuditRecordDeleted, actor, h.Key(), "replaced")
		}
	}
	var desc []string
	changed := false
	for _, w := range want {
		desc = append(desc, w.Type+" "+strings.Join(w.Values, ","))
		i := slices.IndexFunc(have, func(h DNSRecord) bool { return h.Type == w.Type })
		if i >= 0 && slices.Equal(have[i].Values, w.Values) && have[i].AccountID == w.AccountID && have[i].TunnelID == w.TunnelID && have[i].DeleteAt.IsZero() {
			continue
		}
		if _, err := e.Store.PutRecord(w); err != nil {
			return "", err
		}
		if i < 0 || !slices.Equal(have[i].Values, w.Values) {
			e.audit(w.AccountID, AuditCNAMEAdd, actor, w.Key(), strings.Join(w.Values, ","))
		}
		changed = true
	}
	if changed {
		e.dnsChanged()
	}
	return t.Hostname + " " + strings.Join(desc, "; "), nil
}

// scheduleDelete marks the tunnel's records and the tunnel itself for
// deletion after a random delay in [RecordDeleteMin, RecordDeleteMax].
func (e *Edge) scheduleDelete(hostname string) {
	lo, hi := e.RecordDeleteMin, e.RecordDeleteMax
	if lo <= 0 && hi <= 0 {
		lo, hi = DefaultRecordDeleteMin, DefaultRecordDeleteMax
	}
	if hi < lo {
		hi = lo
	}
	at := time.Now().UTC().Add(lo)
	if hi > lo {
		at = at.Add(rand.N(hi - lo))
	}
	if t, err := e.Store.TunnelByHostname(hostname); err == nil {
		t.DeleteAt = at
		if _, err := e.Store.PutTunnel(t); err != nil {
			e.Logger.Error("scheduling the tunnel's deletion failed", "hostname", hostname, "err", err)
		}
	}
	recs, err := e.Store.RecordsByName(hostname)
	if err != nil {
		e.Logger.Error("scheduling DNS record deletion failed", "hostname", hostname, "err", err)
		return
	}
	for _, r := range recs {
		r.DeleteAt = at
		if _, err := e.Store.PutRecord(r); err != nil {
			e.Logger.Error("scheduling DNS record deletion failed", "record", r.Key(), "err", err)
		}
	}
	e.Logger.Info("tunnel unregistered; its DNS records will be deleted", "hostname", hostname, "at", at)
}

// isLive reports whether hostname has a connection on this edge.
func (e *Edge) isLive(account, hostname string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[account][hostname]
}

// Sweep deletes the records and tunnels whose deletion time has passed,
// unless the tunnel is connected to this edge again (then the pending
// deletion is cancelled: another edge of a shared store may have scheduled
// it while this one still serves the tunnel). Run calls it periodically.
func (e *Edge) Sweep(now time.Time) error {
	tunnels, err := e.Store.ListTunnels("")
	if err != nil {
		return err
	}
	changed := false
	for _, t := range tunnels {
		if t.DeleteAt.IsZero() {
			continue
		}
		if e.isLive(t.AccountID, t.Hostname) {
			t.DeleteAt = time.Time{}
			e.Store.PutTunnel(t)
			if _, err := e.ensureRecordsFor(t); err != nil {
				e.Logger.Error("restoring DNS records failed", "hostname", t.Hostname, "err", err)
			}
			continue
		}
		if now.Before(t.DeleteAt) {
			continue
		}
		if err := e.Store.DeleteTunnel(t.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		e.audit(t.AccountID, AuditTunnelDeleted, "", t.Hostname, "unregistered since "+t.DeleteAt.Format(time.RFC3339)+" (scheduled)")
		changed = true
	}
	recs, err := e.Store.ListRecords("")
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.DeleteAt.IsZero() || now.Before(r.DeleteAt) || e.isLive(r.AccountID, r.Name) {
			continue
		}
		if err := e.Store.DeleteRecord(r.Name, r.Type); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		e.audit(r.AccountID, AuditRecordDeleted, "", r.Key(), "tunnel unregistered")
		changed = true
	}
	if changed {
		e.dnsChanged()
	}
	return nil
}

// ensureRecordsFor is ensureRecords for a tunnel in a full zone; partial
// zones get no records.
func (e *Edge) ensureRecordsFor(t Tunnel) (string, error) {
	z, err := e.Store.GetZone(t.ZoneID)
	if err != nil {
		return "", err
	}
	if z.Partial {
		e.dnsChanged() // its cdn name appears
		return "", nil
	}
	return e.ensureRecords(t, "")
}

// Run sweeps expired records until ctx ends, at a period of a tenth of
// the shortest deletion delay, between 100 ms and one minute.
func (e *Edge) Run(ctx context.Context) {
	lo := e.RecordDeleteMin
	if lo <= 0 {
		lo = DefaultRecordDeleteMin
	}
	period := min(max(lo/10, 100*time.Millisecond), time.Minute)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if err := e.Sweep(now.UTC()); err != nil {
				e.Logger.Error("sweeping unregistered tunnels failed", "err", err)
			}
		}
	}
}

// dnsChanged tells the DNS server to load the records again.
func (e *Edge) dnsChanged() {
	if f := e.OnDNSChange; f != nil {
		f()
	}
}

// DeleteRecords deletes the records at name (every type) by hand.
func (e *Edge) DeleteRecords(actor User, name string) (int, error) {
	recs, err := e.Store.RecordsByName(name)
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 {
		return 0, fmt.Errorf("control: no DNS record at %q: %w", name, ErrNotFound)
	}
	if !e.CanAdmin(actor, recs[0].AccountID) {
		return 0, fmt.Errorf("control: no DNS record at %q in your account: %w", name, ErrNotFound)
	}
	for _, r := range recs {
		if err := e.Store.DeleteRecord(r.Name, r.Type); err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		e.audit(r.AccountID, AuditRecordDeleted, actor.ID, r.Key(), "deleted by hand")
	}
	e.dnsChanged()
	return len(recs), nil
}

// DeleteTunnel deletes a tunnel that is not connected, with its DNS
// records.
func (e *Edge) DeleteTunnel(actor User, hostname string) error {
	t, err := e.Store.TunnelByHostname(hostname)
	if err != nil || !e.CanAdmin(actor, t.AccountID) {
		return fmt.Errorf("control: no tunnel %q in your account: %w", hostname, ErrNotFound)
	}
	if e.isLive(t.AccountID, t.Hostname) {
		return fmt.Errorf("control: tunnel %q is connected: stop its connectors first: %w", t.Hostname, ErrExists)
	}
	if err := e.Store.DeleteTunnel(t.ID); err != nil {
		return err
	}
	e.audit(t.AccountID, AuditTunnelDeleted, actor.ID, t.Hostname, "deleted by hand")
	recs, err := e.Store.RecordsByName(t.Hostname)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := e.Store.DeleteRecord(r.Name, r.Type); err == nil {
			e.audit(r.AccountID, AuditRecordDeleted, actor.ID, r.Key(), "tunnel deleted")
		}
	}
	e.dnsChanged()
	return nil
}

// DNSData is the DNS server's view of the store: zones, the records of
// full zones, the cdn names of partial zones' tunnels, the pools, and the
// edge's own names.
func (e *Edge) DNSData() (*dnsserver.Data, error) {
	zones, err := e.Store.ListZones("")
	if err != nil {
		return nil, err
	}
	recs, err := e.Store.ListRecords("")
	if err != nil {
		return nil, err
	}
	tunnels, err := e.Store.ListTunnels("")
	if err != nil {
		return nil, err
	}
	d := &dnsserver.Data{
		Domain: e.Domain, EdgeAddrs: e.publicAddrs(), Regions: e.Regions,
		TunnelPort: e.TunnelPort, TTL: 60,
	}
	partial := map[string]bool{}
	for _, z := range zones {
		d.Zones = append(d.Zones, dnsserver.Zone{Name: z.Name, Partial: z.Partial})
		partial[z.ID] = z.Partial
	}
	for _, r := range recs {
		d.Records = append(d.Records, dnsserver.Record{Name: r.Name, Type: r.Type, Values: r.Values})
	}
	pools := map[string]bool{}
	for _, t := range tunnels {
		if partial[t.ZoneID] {
			d.CDNNames = append(d.CDNNames, t.Hostname)
		}
		if t.LBPool != "" && !pools[t.LBPool] {
			pools[t.LBPool] = true
			d.Pools = append(d.Pools, t.LBPool)
		}
	}
	return d, nil
}
