package control

import "sync/atomic"

// revokedSet is the in-memory set of revoked certificate serials that a
// Store's IsRevoked answers from. It is replaced whole on each change (copy
// on write), so a lookup takes no lock and does not allocate. Revocation is
// final: serials are only added. The zero value is an empty set.
type revokedSet struct {
	p atomic.Pointer[map[string]struct{}]
}

// has reports whether serial (normalised) is in the set.
func (r *revokedSet) has(serial string) bool {
	m := r.p.Load()
	if m == nil {
		return false
	}
	_, ok := (*m)[serial]
	return ok
}

// add puts serials (normalised) into the set.
func (r *revokedSet) add(serials ...string) {
	for {
		old := r.p.Load()
		var cur map[string]struct{}
		if old != nil {
			cur = *old
		}
		missing := false
		for _, s := range serials {
			if _, ok := cur[s]; !ok {
				missing = true
				break
			}
		}
		if !missing && old != nil {
			return
		}
		set := make(map[string]struct{}, len(cur)+len(serials))
		for k := range cur {
			set[k] = struct{}{}
		}
		for _, s := range serials {
			set[s] = struct{}{}
		}
		if r.p.CompareAndSwap(old, &set) {
			return
		}
	}
}
