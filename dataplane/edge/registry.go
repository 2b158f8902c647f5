package edge

import (
	"sync"
	"sync/atomic"

	"github.com/culvert-tunnel/culvert/dataplane"
	"github.com/culvert-tunnel/culvert/dataplane/tunnel"
)

// tunnelConn is one registered tunnel connection.
type tunnelConn struct {
	dc       *dataplane.Conn
	id       string
	hostname string
	tunnelID string
	reg      tunnel.Register

	inflight atomic.Int32
	leaving  atomic.Bool // unregistered or draining: no new streams

	ctrlMu sync.Mutex
	ctrl   *dataplane.Stream
}

// route holds the live connections of one hostname. conns is replaced
// whole (copy on write), so picking takes no lock.
type route struct {
	conns atomic.Pointer[[]*tunnelConn]
}

// registry maps hostnames to their live tunnel connections. It is the
// routing table of the visitor path: pick runs once per request.
type registry struct {
	mu     sync.RWMutex
	routes map[string]*route
}

func newRegistry() *registry { return &registry{routes: map[string]*route{}} }

// pick returns the connection with the fewest in-flight streams among the
// live ones of host, or nil. host must be normalised (lower case, no port).
func (r *registry) pick(host []byte) *tunnelConn {
	r.mu.RLock()
	rt := r.routes[string(host)]
	r.mu.RUnlock()
	if rt == nil {
		return nil
	}
	cs := rt.conns.Load()
	if cs == nil {
		return nil
	}
	var best *tunnelConn
	var bestN int32
	for _, tc := range *cs {
		if tc.leaving.Load() {
			continue
		}
		n := tc.inflight.Load()
		if best == nil || n < bestN {
			best, bestN = tc, n
		}
	}
	return best
}

// add registers tc under its hostname.
func (r *registry) add(tc *tunnelConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.routes[tc.hostname]
	if rt == nil {
		rt = new(route)
		r.routes[tc.hostname] = rt
	}
	var next []*tunnelConn
	if cs := rt.conns.Load(); cs != nil {
		next = append(next, *cs...)
	}
	next = append(next, tc)
	rt.conns.Store(&next)
}

// remove takes tc out of routing. It reports whether tc was its hostname's
// last connection.
func (r *registry) remove(tc *tunnelConn) (last bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.routes[tc.hostname]
	if rt == nil {
		return false
	}
	cs := rt.conns.Load()
	if cs == nil {
		return false
	}
	next := make([]*tunnelConn, 0, len(*cs))
	found := false
	for _, c := range *cs {
		if c == tc {
			found = true
			continue
		}
		next = append(next, c)
	}
	if !found {
		return false
	}
	if len(next) == 0 {
		delete(r.routes, tc.hostname)
		return true
	}
	rt.conns.Store(&next)
	return false
}

// pool returns the load-balancer pool of host's live connections, and
// whether it has any.
func (r *registry) pool(host string) (string, bool) {
	r.mu.RLock()
	rt := r.routes[host]
	r.mu.RUnlock()
	if rt == nil {
		return "", false
	}
	if cs := rt.conns.Load(); cs != nil && len(*cs) > 0 {
		return (*cs)[0].reg.LBPool, true
	}
	return "", false
}

// count returns the number of live connections of host.
func (r *registry) count(host string) int {
	r.mu.RLock()
	rt := r.routes[host]
	r.mu.RUnlock()
	if rt == nil {
		return 0
	}
	if cs := rt.conns.Load(); cs != nil {
		return len(*cs)
	}
	return 0
}

// all returns every registered connection.
func (r *registry) all() []*tunnelConn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*tunnelConn
	for _, rt := range r.routes {
		if cs := rt.conns.Load(); cs != nil {
			out = append(out, *cs...)
		}
	}
	return out
}

// hostnames returns how many hostnames have live connections.
func (r *registry) hostnames() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.routes)
}
