// Package control is culvert's minimal control path: the state an edge
// needs besides the data plane, and later the pieces built on it (the
// management API, login, DNS for zones).
//
// Today it is the store: accounts, users and their API tokens, zones (DNS
// domains), the origin certificates the edge's CA issued and their
// revocation, tunnels (hostnames served by connectors), an audit log, and
// the edge's own settings and secrets (meta). Store is the interface; one
// edge keeps it in a bbolt file with BoltStore, and several edges share it
// through an etcd cluster with EtcdStore (OpenStore picks one from a spec
// such as etcd://127.0.0.1:2379/culvert/). Values are JSON-encoded so that
// every implementation reads the same records.
//
// What control is not: it is not on the data plane's hot path. Visitor
// requests and tunnel streams never touch it, except for two checks made
// when a connector arrives: IsRevoked on every tunnel TLS handshake
// (answered from memory, without locks or allocation) and the API token
// check (UserByToken) when a connector registers. It is not a policy
// engine either: the store enforces uniqueness (zone names, tunnel
// hostnames, token hashes) and existence, while who may do what is decided
// by its callers. API tokens are never stored, only their SHA-256.
package control
