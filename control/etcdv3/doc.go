// Package etcdv3 is a small etcd v3 client over the cluster's HTTP/JSON
// gateway (the /v3/... endpoints every etcd 3.4 or newer serves on its
// client port), written with net/http and encoding/json only. It exists
// for control.EtcdStore: a culvert binary that links it stays free of
// gRPC and protobuf, whose package initialisation would otherwise cost
// every culvert process, connectors included, memory at start.
//
// It covers what the store needs and nothing more:
//
//   - Get (a range: one key, a [key, end) range or a prefix, at a
//     revision, with a limit, keys only or count only, in ascending or
//     descending key order), Put, Delete;
//   - Txn: comparisons of a key's CreateRevision or ModRevision with
//     =, !=, < or >, then/else lists of get, put and delete operations;
//   - Watch of a key, range or prefix from a start revision, with the
//     previous values on request: a channel of responses that ends when
//     the context ends or the stream breaks (the caller watches again,
//     after a reload if it needs one);
//   - several endpoints, tried in turn when one cannot be reached; TLS;
//     username and password authentication, the token renewed when the
//     cluster no longer accepts it;
//   - etcd's errors as *Error values that errors.Is matches against
//     ErrCompacted, ErrFutureRev, ErrNoLeader and the other sentinels.
//
// What it is not: a general etcd client. There are no leases, locks,
// elections, member, maintenance or auth administration calls, no
// compaction, no comparisons of versions or values, no nested
// transactions, no sorting other than by key, no serializable reads, no
// unix-socket endpoints and no HTTP proxies. A watch is not resumed transparently
// after a break, and a write whose connection broke after it was sent is
// not retried (it may or may not have been applied; the store's
// conditional transactions tell). Every call is bounded by its context
// only: the client adds no timeout of its own beyond the dial timeout.
package etcdv3
