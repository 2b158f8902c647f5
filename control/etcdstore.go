package control

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/culvert-tunnel/culvert/control/etcdv3"
)

// DefaultEtcdPrefix is the key prefix of an EtcdStore whose config names
// none.
const DefaultEtcdPrefix = "/culvert/"

// Defaults of EtcdConfig.
const (
	DefaultEtcdDialTimeout    = 5 * time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
)

// EtcdConfig says how to reach the etcd cluster of an EtcdStore.
type EtcdConfig struct {
	// Endpoints are the cluster's client addresses, "host:port" (or
	// "https://host:port" with TLS), tried in turn when one cannot be
	// reached.
	Endpoints []string
	// Prefix starts every key of the store (DefaultEtcdPrefix if empty);
	// a "/" is added at the end if missing. Edges sharing one state use
	// the same prefix; different prefixes are independent states.
	Prefix string
	// DialTimeout bounds the connection (TCP connect and TLS handshake)
	// to one endpoint (DefaultEtcdDialTimeout if 0).
	DialTimeout time.Duration
	// RequestTimeout bounds every Store call, retries included
	// (DefaultEtcdRequestTimeout if 0): a cluster that does not answer
	// gives an error, not a hang.
	RequestTimeout time.Duration
	// TLS, if set, is the client's TLS configuration (server CA, client
	// certificate).
	TLS *tls.Config
	// Username and Password authenticate to a cluster with auth enabled.
	Username, Password string
}

// EtcdStore is the Store shared by several edge processes, kept in an etcd
// cluster (etcd 3.4 or newer, v3 API) under one key prefix. It exists so
// that edges behind one DNS name agree on accounts, users, zones,
// certificates, tunnels and the audit log: what one edge writes, the
// others read at once, and a revocation made through one reaches the
// others' IsRevoked within a second, through a watch.
//
// It behaves as BoltStore does, error for error, and stores the same JSON
// values. Every write is one etcd transaction that writes the record and
// its index entries together and is conditional on what it read (the
// creation or modification revision of each key), so uniqueness of IDs,
// zone names, tunnel hostnames and token hashes holds between processes;
// a write whose condition failed is read and tried again. Audit sequence
// numbers come from a counter key advanced the same way: they grow across
// all edges sharing the prefix.
//
// What it is not: it is no cache. Every call but IsRevoked is a round trip
// to the cluster, bounded by RequestTimeout, so it suits the control path
// and the registration of connectors, not a per-request check. IsRevoked
// answers from memory: the revoked serials are loaded at open and kept
// current by a watch on the certificates, which is set up again with a
// full reload whenever it breaks. While the cluster is unreachable,
// IsRevoked keeps answering with what it knew, and every other method
// fails after RequestTimeout. It does not manage the cluster (members,
// compaction, backups, authentication setup) either: that is the
// operator's etcd.
type EtcdStore struct {
	cli       *etcdv3.Client
	endpoints string
	prefix    string
	timeout   time.Duration

	// base is cancelled by Close: it ends the watch and in-flight calls.
	base   context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the watch goroutine is gone
	closed sync.Once

	// revoked is loaded at open and kept current by the watch.
	revoked revokedSet
	// watchMu guards stopWatch, which ends the current watch (the
	// reload and a new watch follow, as after a break).
	watchMu   sync.Mutex
	stopWatch context.CancelFunc

	// auditMu serialises this process's AppendAudit calls around seq, the
	// last known state of the counter key (a guess: the transaction
	// checks it).
	auditMu sync.Mutex
	seq     uint64
	seqRev  int64 // the counter's ModRevision, 0 if it is believed absent
}

var _ Store = (*EtcdStore)(nil)

// Key layout under the prefix. Values are the same JSON as BoltStore's;
// index values are IDs, or empty for the account indices, whose keys are
// the account ID, a zero byte, then the entity key.
const (
	ekSchema        = "schema" // decimal SchemaVersion
	ekMeta          = "meta/"
	ekAccounts      = "accounts/"
	ekUsers         = "users/"
	ekUsersByToken  = "users_by_token/" // token hash (hex) -> user ID
	ekUsersByEmail  = "users_by_email/" // email -> user ID
	ekZones         = "zones/"
	ekZonesByName   = "zones_by_name/" // name -> zone ID
	ekCerts         = "certs/"         // serial -> CertRecord
	ekCertsByAcct   = "certs_by_account/"
	ekTunnels       = "tunnels/"
	ekTunnelsByHost = "tunnels_by_host/" // hostname -> tunnel ID
	ekTunnelsByAcct = "tunnels_by_account/"
	ekAudit         = "audit/" // %016x Seq -> AuditEvent
	ekAuditByAcct   = "audit_by_account/"
	ekAuditSeq      = "audit_seq"    // decimal, the last Seq given
	ekRecords       = "dns_records/" // "name/type" -> DNSRecord
	ekRecordsByAcct = "dns_records_by_account/"
)

// etcdTxnOps is the most operations put in one transaction (etcd refuses
// more than --max-txn-ops, 128 by default).
const etcdTxnOps = 100

// etcdPage is the number of keys read per range request when listing.
const etcdPage = 500

// OpenEtcd connects to the cluster, checks (or writes) the schema version
// under the prefix, loads the revoked certificates and starts watching
// them. It fails if the cluster does not answer within the timeouts.
func OpenEtcd(cfg EtcdConfig) (*EtcdStore, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("control: etcd: no endpoints")
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultEtcdDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultEtcdRequestTimeout
	}
	// The client speaks etcd's HTTP/JSON gateway (no gRPC): a call after
	// an outage connects again at once, the next endpoint is tried when
	// one cannot be reached, and a dead connection under the watch is
	// found by TCP keepalives within seconds, so that the watch moves on.
	cli, err := etcdv3.New(etcdv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         cfg.TLS,
		Username:    cfg.Username,
		Password:    cfg.Password,
	})
	if err != nil {
		return nil, fmt.Errorf("control: etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &EtcdStore{
		cli:       cli,
		endpoints: strings.Join(cfg.Endpoints, ","),
		prefix:    prefix,
		timeout:   cfg.RequestTimeout,
		done:      make(chan struct{}),
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	fail := func(err error) (*EtcdStore, error) {
		s.cancel()
		cli.Close()
		return nil, err
	}
	if err := s.initSchema(); err != nil {
		return fail(err)
	}
	ctx, cancel := s.ctx()
	rev, err := s.loadRevoked(ctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	go s.watchRevoked(rev)
	return s, nil
}

// Prefix is the key prefix of the store, ending in "/".
func (s *EtcdStore) Prefix() string { return s.prefix }

// Close stops the watch and closes the connection. IsRevoked keeps
// answering from memory; every other method fails.
func (s *EtcdStore) Close() error {
	var err error
	s.closed.Do(func() {
		s.cancel()
		<-s.done
		if e := s.cli.Close(); e != nil && !errors.Is(e, context.Canceled) {
			err = fmt.Errorf("control: etcd close: %w", e)
		}
	})
	return err
}

// --- helpers ---

// ctx bounds one Store call.
func (s *EtcdStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, s.timeout)
}

// fail wraps an error of the cluster with what was being done; a timeout
// says so plainly.
func (s *EtcdStore) fail(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		if s.base.Err() != nil {
			return fmt.Errorf("control: %s: the store is closed: %w", what, err)
		}
		return fmt.Errorf("control: %s: etcd (%s) did not answer within %v: %w", what, s.endpoints, s.timeout, err)
	}
	return fmt.Errorf("control: %s: etcd (%s): %w", what, s.endpoints, err)
}

func (s *EtcdStore) key(kind, k string) string { return s.prefix + kind + k }

// acctIdx is the key of an account index entry.
func (s *EtcdStore) acctIdx(kind, acct, k string) string {
	return s.prefix + kind + acct + "\x00" + k
}

func etcdSeqKey(seq uint64) string { return fmt.Sprintf("%016x", seq) }

func absent(key string) etcdv3.Cmp {
	return etcdv3.Compare(etcdv3.CreateRevision(key), "=", 0)
}

func unchanged(kv *etcdv3.KeyValue) etcdv3.Cmp {
	return etcdv3.Compare(etcdv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)
}

func putJSONOp(key string, v any) (etcdv3.Op, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return etcdv3.Op{}, err
	}
	return etcdv3.OpPut(key, string(data)), nil
}

func decodeKV(kv *etcdv3.KeyValue, what, name string, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("control: decode %s %q: %w", what, name, err)
	}
	return nil
}

// read returns the key-values of keys (nil for an absent one), read in one
// transaction: one round trip, one revision.
func (s *EtcdStore) read(ctx context.Context, what string, keys ...string) ([]*etcdv3.KeyValue, error) {
	kvs, _, err := s.readRev(ctx, what, keys...)
	return kvs, err
}

// readRev is read that also returns the revision read.
func (s *EtcdStore) readRev(ctx context.Context, what string, keys ...string) ([]*etcdv3.KeyValue, int64, error) {
	ops := make([]etcdv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = etcdv3.OpGet(k)
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, s.fail(ctx, what, err)
	}
	out := make([]*etcdv3.KeyValue, len(keys))
	for i, r := range resp.Responses {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			out[i] = kvs[0]
		}
	}
	return out, resp.Header.Revision, nil
}

// Outcomes of an update's plan besides a write: errDone ends the update
// without writing, errRetry runs the plan again (what it read changed
// between two reads).
var (
	errDone  = errors.New("nothing to write")
	errRetry = errors.New("read again")
)

// update runs plan until its transaction commits. plan reads what it needs
// and returns the writes with the conditions its reads rest on; when a
// condition fails (another writer came between the read and the write) it
// is run again, within the call's timeout. plan returning errDone ends the
// update with no write and no error; errRetry runs it again at once.
func (s *EtcdStore) update(ctx context.Context, what string, plan func() ([]etcdv3.Cmp, []etcdv3.Op, error)) error {
	for {
		cmps, ops, err := plan()
		if errors.Is(err, errDone) {
			return nil
		}
		if errors.Is(err, errRetry) {
			if err := ctx.Err(); err != nil {
				return s.fail(ctx, what, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return s.fail(ctx, what, err)
		}
		if resp.Succeeded {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return s.fail(ctx, what, err)
		}
	}
}

// scan calls fn with each key-value in [from, end), in key order, at most
// limit of them (all if limit <= 0), reading pages at one revision. It
// returns that revision.
func (s *EtcdStore) scan(ctx context.Context, what, from, end string, limit int, keysOnly bool, fn func(kv *etcdv3.KeyValue) error) (int64, error) {
	var rev int64
	n := 0
	for {
		page := etcdPage
		if limit > 0 && limit-n < page {
			page = limit - n
		}
		opts := []etcdv3.OpOption{etcdv3.WithRange(end), etcdv3.WithLimit(int64(page))}
		if rev != 0 {
			opts = append(opts, etcdv3.WithRev(rev))
		}
		if keysOnly {
			opts = append(opts, etcdv3.WithKeysOnly())
		}
		resp, err := s.cli.Get(ctx, from, opts...)
		if err != nil {
			return 0, s.fail(ctx, what, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return 0, err
			}
		}
		n += len(resp.Kvs)
		if !resp.More || len(resp.Kvs) == 0 || (limit > 0 && n >= limit) {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// scanPrefix is scan over every key starting with prefix.
func (s *EtcdStore) scanPrefix(ctx context.Context, what, prefix string, fn func(kv *etcdv3.KeyValue) error) (int64, error) {
	return s.scan(ctx, what, prefix, etcdv3.PrefixRangeEnd(prefix), 0, false, fn)
}

// etcdListAll decodes every value under kind.
func etcdListAll[T any](s *EtcdStore, kind, what string, keep func(*T) bool) ([]T, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var out []T
	p := s.prefix + kind
	_, err := s.scanPrefix(ctx, "list "+what+"s", p, func(kv *etcdv3.KeyValue) error {
		var x T
		if err := decodeKV(kv, what, strings.TrimPrefix(string(kv.Key), p), &x); err != nil {
			return err
		}
		if keep == nil || keep(&x) {
			out = append(out, x)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// indexed reads the entity keys of acct's entries in the account index
// idx from the entity key from on (all if from is ""), at most limit, then
// the values of those entities under kind, at the index's revision: a
// consistent snapshot, as one bbolt transaction gives. A value compacted
// away in between makes it start again.
func (s *EtcdStore) indexed(ctx context.Context, what, idx, kind, acct, from string, limit int) ([]*etcdv3.KeyValue, error) {
	for {
		out, err := s.indexedAt(ctx, what, idx, kind, acct, from, limit)
		if errors.Is(err, etcdv3.ErrCompacted) && ctx.Err() == nil {
			continue
		}
		return out, err
	}
}

func (s *EtcdStore) indexedAt(ctx context.Context, what, idx, kind, acct, from string, limit int) ([]*etcdv3.KeyValue, error) {
	p := s.acctIdx(idx, acct, "")
	var keys []string
	rev, err := s.scan(ctx, "list "+what+"s", p+from, etcdv3.PrefixRangeEnd(p), limit, true, func(kv *etcdv3.KeyValue) error {
		keys = append(keys, strings.TrimPrefix(string(kv.Key), p))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.getAt(ctx, what, kind, keys, rev)
}

// getAt reads the entities of kind named by keys, in that order, at
// revision rev, a transaction of etcdTxnOps reads at a time.
func (s *EtcdStore) getAt(ctx context.Context, what, kind string, keys []string, rev int64) ([]*etcdv3.KeyValue, error) {
	out := make([]*etcdv3.KeyValue, 0, len(keys))
	for len(keys) > 0 {
		batch := keys[:min(len(keys), etcdTxnOps)]
		keys = keys[len(batch):]
		ops := make([]etcdv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = etcdv3.OpGet(s.key(kind, k), etcdv3.WithRev(rev))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			if errors.Is(err, etcdv3.ErrCompacted) {
				return nil, err
			}
			return nil, s.fail(ctx, "list "+what+"s", err)
		}
		for i, r := range resp.Responses {
			kvs := r.GetResponseRange().GetKvs()
			if len(kvs) == 0 {
				return nil, fmt.Errorf("control: %s %q: %w", what, batch[i], ErrNotFound)
			}
			out = append(out, kvs[0])
		}
	}
	return out, nil
}

// etcdListIndexed decodes the entities of acct listed in the account index.
func etcdListIndexed[T any](s *EtcdStore, idx, kind, what, acct string) ([]T, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	kvs, err := s.indexed(ctx, what, idx, kind, acct, "", 0)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, kv := range kvs {
		var x T
		if err := decodeKV(kv, what, strings.TrimPrefix(string(kv.Key), s.prefix+kind), &x); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// getEntity decodes the value at kind+id into v; ErrNotFound if absent.
func (s *EtcdStore) getEntity(kind, what, id string, v any) error {
	ctx, cancel := s.ctx()
	defer cancel()
	kvs, err := s.read(ctx, "get "+what, s.key(kind, id))
	if err != nil {
		return err
	}
	if kvs[0] == nil {
		return fmt.Errorf("control: %s %q: %w", what, id, ErrNotFound)
	}
	return decodeKV(kvs[0], what, id, v)
}

// byIndex decodes the entity named by the value of the index key, both
// read at one revision; notFound is the error if the index has no entry.
func (s *EtcdStore) byIndex(idxKey, kind, what string, notFound error, v any) error {
	ctx, cancel := s.ctx()
	defer cancel()
	for {
		kvs, rev, err := s.readRev(ctx, "get "+what, idxKey)
		if err != nil {
			return err
		}
		if kvs[0] == nil {
			return notFound
		}
		id := string(kvs[0].Value)
		resp, err := s.cli.Get(ctx, s.key(kind, id), etcdv3.WithRev(rev))
		if errors.Is(err, etcdv3.ErrCompacted) && ctx.Err() == nil {
			continue // compacted in between: read both again
		}
		if err != nil {
			return s.fail(ctx, "get "+what, err)
		}
		if len(resp.Kvs) == 0 {
			// Written in one transaction with its index entry: the
			// store is damaged.
			return fmt.Errorf("control: %s %q: %w", what, id, ErrNotFound)
		}
		return decodeKV(resp.Kvs[0], what, id, v)
	}
}

// freshID is the part of the create methods that chooses the ID: the
// given one if free (ErrExists if taken), else a new random one.
func (s *EtcdStore) freshID(ctx context.Context, kind, what, id string) (string, error) {
	if id != "" {
		if err := checkKey(what+" id", id); err != nil {
			return "", err
		}
		kvs, err := s.read(ctx, "create "+what, s.key(kind, id))
		if err != nil {
			return "", err
		}
		if kvs[0] != nil {
			return "", fmt.Errorf("control: %s %q: %w", what, id, ErrExists)
		}
		return id, nil
	}
	// A random ID taken already makes the transaction fail, and the next
	// attempt draws another.
	return newID()
}

// --- schema ---

func (s *EtcdStore) initSchema() error {
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekSchema, "")
	resp, err := s.cli.Txn(ctx).If(absent(k)).
		Then(etcdv3.OpPut(k, strconv.Itoa(SchemaVersion))).
		Else(etcdv3.OpGet(k)).Commit()
	if err != nil {
		return s.fail(ctx, "open "+s.prefix, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return nil // deleted in between: nothing newer is there
	}
	v := kvs[0].Value
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 {
		return fmt.Errorf("control: etcd %s: bad schema version %q", s.prefix, v)
	}
	if n > SchemaVersion {
		return fmt.Errorf("control: etcd %s: schema version %d is newer than this culvert supports (%d); run a newer culvert", s.prefix, n, SchemaVersion)
	}
	return nil
}

// --- meta ---

func (s *EtcdStore) GetMeta(key string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	kvs, err := s.read(ctx, "get meta", s.key(ekMeta, key))
	if err != nil {
		return nil, err
	}
	if kvs[0] == nil {
		return nil, fmt.Errorf("control: meta %q: %w", key, ErrNotFound)
	}
	return append([]byte{}, kvs[0].Value...), nil
}

func (s *EtcdStore) PutMeta(key string, val []byte) error {
	if err := checkKey("meta key", key); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.cli.Put(ctx, s.key(ekMeta, key), string(val)); err != nil {
		return s.fail(ctx, "put meta", err)
	}
	return nil
}

func (s *EtcdStore) PutMetaIfAbsent(key string, val []byte) ([]byte, error) {
	if err := checkKey("meta key", key); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekMeta, key)
	for {
		resp, err := s.cli.Txn(ctx).If(absent(k)).
			Then(etcdv3.OpPut(k, string(val))).
			Else(etcdv3.OpGet(k)).Commit()
		if err != nil {
			return nil, s.fail(ctx, "put meta", err)
		}
		if resp.Succeeded {
			return append([]byte{}, val...), nil
		}
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			return append([]byte{}, kvs[0].Value...), nil
		}
		// Deleted between the comparison and the read: try again.
	}
}

// --- accounts ---

func (s *EtcdStore) CreateAccount(a Account) (Account, error) {
	if a.TunnelLimit < 0 {
		return Account{}, fmt.Errorf("control: account tunnel limit %d: negative", a.TunnelLimit)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	in := a
	err := s.update(ctx, "create account", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		a = in
		id, err := s.freshID(ctx, ekAccounts, "account", a.ID)
		if err != nil {
			return nil, nil, err
		}
		a.ID = id
		if a.Created.IsZero() {
			a.Created = now()
		}
		k := s.key(ekAccounts, a.ID)
		put, err := putJSONOp(k, a)
		return []etcdv3.Cmp{absent(k)}, []etcdv3.Op{put}, err
	})
	if err != nil {
		return Account{}, err
	}
	return a, nil
}

func (s *EtcdStore) GetAccount(id string) (Account, error) {
	var a Account
	err := s.getEntity(ekAccounts, "account", id, &a)
	return a, err
}

// ListAccounts returns the accounts in ID order.
func (s *EtcdStore) ListAccounts() ([]Account, error) {
	return etcdListAll[Account](s, ekAccounts, "account", nil)
}

// --- users ---

func (s *EtcdStore) CreateUser(u User) (User, string, error) {
	if u.Role == "" {
		u.Role = RoleMember
	}
	if !u.Role.Valid() {
		return User{}, "", fmt.Errorf("control: user role %q: invalid", u.Role)
	}
	if err := checkRef("account id", u.AccountID); err != nil {
		return User{}, "", err
	}
	u.Email = normEmail(u.Email)
	if err := checkRef("user email", u.Email); err != nil {
		return User{}, "", err
	}
	token, hash, err := newToken()
	if err != nil {
		return User{}, "", err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	in := u
	err = s.update(ctx, "create user", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		u = in
		id, err := s.freshID(ctx, ekUsers, "user", u.ID)
		if err != nil {
			return nil, nil, err
		}
		u.ID = id
		u.TokenHash = hash
		u.ExtraTokens = nil
		u.KeyVersion = 1
		if u.Created.IsZero() {
			u.Created = now()
		}
		k, idx := s.key(ekUsers, u.ID), s.key(ekUsersByToken, hash)
		cmps := []etcdv3.Cmp{absent(k), absent(idx)}
		var ops []etcdv3.Op
		if u.Email != "" {
			// The email's entry is written with the user, on the
			// condition that it is still absent: of two creations with
			// one email, the second reads it and fails.
			ek := s.key(ekUsersByEmail, u.Email)
			kvs, err := s.read(ctx, "create user", ek)
			if err != nil {
				return nil, nil, err
			}
			if kvs[0] != nil {
				return nil, nil, fmt.Errorf("control: user email %q: %w", u.Email, ErrExists)
			}
			cmps = append(cmps, absent(ek))
			ops = append(ops, etcdv3.OpPut(ek, u.ID))
		}
		put, err := putJSONOp(k, u)
		return cmps, append(ops, put, etcdv3.OpPut(idx, u.ID)), err
	})
	if err != nil {
		return User{}, "", err
	}
	return u, token, nil
}

func (s *EtcdStore) GetUser(id string) (User, error) {
	var u User
	err := s.getEntity(ekUsers, "user", id, &u)
	return u, err
}

// UserByToken finds the user by the hash of token; the token itself is
// neither stored nor compared.
func (s *EtcdStore) UserByToken(token string) (User, error) {
	hash := HashToken(token)
	notFound := fmt.Errorf("control: user by token: %w", ErrNotFound)
	var u User
	if err := s.byIndex(s.key(ekUsersByToken, hash), ekUsers, "user", notFound, &u); err != nil {
		return User{}, err
	}
	if !u.hasToken(hash) { // a stale index entry never authenticates
		return User{}, notFound
	}
	return u, nil
}

func (s *EtcdStore) RollUserToken(userID string) (string, error) {
	return s.newUserToken(userID, "roll user token", (*User).rollTokens)
}

func (s *EtcdStore) AddUserToken(userID string) (string, error) {
	return s.newUserToken(userID, "add user token", (*User).addExtraToken)
}

// newUserToken makes a token, lets change put its hash into the user's
// token fields, and updates the token index in the same transaction: the
// hashes change drops go, the new one comes.
func (s *EtcdStore) newUserToken(userID, what string, change func(u *User, hash string) (dropped []string)) (string, error) {
	token, hash, err := newToken()
	if err != nil {
		return "", err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekUsers, userID)
	err = s.update(ctx, what, func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		kvs, err := s.read(ctx, what, k)
		if err != nil {
			return nil, nil, err
		}
		if kvs[0] == nil {
			return nil, nil, fmt.Errorf("control: user %q: %w", userID, ErrNotFound)
		}
		var u User
		if err := decodeKV(kvs[0], "user", userID, &u); err != nil {
			return nil, nil, err
		}
		var ops []etcdv3.Op
		for _, h := range change(&u, hash) {
			ops = append(ops, etcdv3.OpDelete(s.key(ekUsersByToken, h)))
		}
		idx := s.key(ekUsersByToken, hash)
		put, err := putJSONOp(k, u)
		ops = append(ops, etcdv3.OpPut(idx, u.ID), put)
		return []etcdv3.Cmp{unchanged(kvs[0]), absent(idx)}, ops, err
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// ListUsers returns the account's users ("" = all) in ID order.
func (s *EtcdStore) ListUsers(accountID string) ([]User, error) {
	return etcdListAll(s, ekUsers, "user", func(u *User) bool {
		return accountID == "" || u.AccountID == accountID
	})
}

func (s *EtcdStore) UpdateUser(u User) error {
	if !u.Role.Valid() {
		return fmt.Errorf("control: user role %q: invalid", u.Role)
	}
	if err := checkRef("account id", u.AccountID); err != nil {
		return err
	}
	if err := checkRef("user email", normEmail(u.Email)); err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekUsers, u.ID)
	email := normEmail(u.Email)
	keys := []string{k}
	if email != "" {
		// The new email's entry, read with the user at one revision.
		keys = append(keys, s.key(ekUsersByEmail, email))
	}
	return s.update(ctx, "update user", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		kvs, err := s.read(ctx, "update user", keys...)
		if err != nil {
			return nil, nil, err
		}
		if kvs[0] == nil {
			return nil, nil, fmt.Errorf("control: user %q: %w", u.ID, ErrNotFound)
		}
		var old User
		if err := decodeKV(kvs[0], "user", u.ID, &old); err != nil {
			return nil, nil, err
		}
		cmps := []etcdv3.Cmp{unchanged(kvs[0])}
		var ops []etcdv3.Op
		if email != old.Email {
			if email != "" {
				if ekv := kvs[1]; ekv == nil {
					cmps = append(cmps, absent(keys[1]))
				} else if string(ekv.Value) != old.ID {
					return nil, nil, fmt.Errorf("control: user email %q: %w", email, ErrExists)
				} else {
					cmps = append(cmps, unchanged(ekv))
				}
				ops = append(ops, etcdv3.OpPut(keys[1], old.ID))
			}
			if old.Email != "" {
				ops = append(ops, etcdv3.OpDelete(s.key(ekUsersByEmail, old.Email)))
			}
		}
		old.Name, old.Role, old.Service = u.Name, u.Role, u.Service
		old.AccountID, old.Email, old.PasswordHash, old.Disabled = u.AccountID, email, u.PasswordHash, u.Disabled
		put, err := putJSONOp(k, old)
		return cmps, append(ops, put), err
	})
}

// UserByEmail finds a user by sign-in name in any case.
func (s *EtcdStore) UserByEmail(email string) (User, error) {
	email = normEmail(email)
	var u User
	err := s.byIndex(s.key(ekUsersByEmail, email), ekUsers, "user",
		fmt.Errorf("control: user %q: %w", email, ErrNotFound), &u)
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// --- zones ---

func (s *EtcdStore) CreateZone(z Zone) (Zone, error) {
	z.Name = normName(z.Name)
	if err := checkKey("zone name", z.Name); err != nil {
		return Zone{}, err
	}
	if err := checkRef("account id", z.AccountID); err != nil {
		return Zone{}, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	in := z
	idx := s.key(ekZonesByName, z.Name)
	err := s.update(ctx, "create zone", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		z = in
		kvs, err := s.read(ctx, "create zone", idx)
		if err != nil {
			return nil, nil, err
		}
		if kvs[0] != nil {
			return nil, nil, fmt.Errorf("control: zone %q: %w", z.Name, ErrExists)
		}
		id, err := s.freshID(ctx, ekZones, "zone", z.ID)
		if err != nil {
			return nil, nil, err
		}
		z.ID = id
		if z.Created.IsZero() {
			z.Created = now()
		}
		k := s.key(ekZones, z.ID)
		put, err := putJSONOp(k, z)
		return []etcdv3.Cmp{absent(idx), absent(k)},
			[]etcdv3.Op{etcdv3.OpPut(idx, z.ID), put}, err
	})
	if err != nil {
		return Zone{}, err
	}
	return z, nil
}

func (s *EtcdStore) GetZone(id string) (Zone, error) {
	var z Zone
	err := s.getEntity(ekZones, "zone", id, &z)
	return z, err
}

// ZoneByName finds a zone by its name in any case, with or without a
// trailing dot.
func (s *EtcdStore) ZoneByName(name string) (Zone, error) {
	name = normName(name)
	var z Zone
	err := s.byIndex(s.key(ekZonesByName, name), ekZones, "zone",
		fmt.Errorf("control: zone %q: %w", name, ErrNotFound), &z)
	if err != nil {
		return Zone{}, err
	}
	return z, nil
}

// ListZones returns the account's zones ("" = all) in ID order.
func (s *EtcdStore) ListZones(accountID string) ([]Zone, error) {
	return etcdListAll(s, ekZones, "zone", func(z *Zone) bool {
		return accountID == "" || z.AccountID == accountID
	})
}

// --- certificates ---

func (s *EtcdStore) PutCert(c CertRecord) error {
	c.Serial = normSerial(c.Serial)
	if err := checkKey("cert serial", c.Serial); err != nil {
		return err
	}
	if err := checkRef("account id", c.AccountID); err != nil {
		return err
	}
	if c.Issued.IsZero() {
		c.Issued = now()
	}
	if c.Revoked && c.RevokedAt.IsZero() {
		c.RevokedAt = now()
	}
	ctx, cancel := s.ctx()
	defer cancel()
	in := c
	k := s.key(ekCerts, c.Serial)
	err := s.update(ctx, "put cert", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		c = in
		kvs, err := s.read(ctx, "put cert", k)
		if err != nil {
			return nil, nil, err
		}
		var cmps []etcdv3.Cmp
		var ops []etcdv3.Op
		if kv := kvs[0]; kv != nil {
			var old CertRecord
			if err := decodeKV(kv, "cert", c.Serial, &old); err != nil {
				return nil, nil, err
			}
			if old.Revoked {
				c.Revoked, c.RevokedAt = true, old.RevokedAt
			}
			if old.AccountID != c.AccountID {
				ops = append(ops, etcdv3.OpDelete(s.acctIdx(ekCertsByAcct, old.AccountID, c.Serial)))
			}
			cmps = append(cmps, unchanged(kv))
		} else {
			cmps = append(cmps, absent(k))
		}
		put, err := putJSONOp(k, c)
		ops = append(ops, etcdv3.OpPut(s.acctIdx(ekCertsByAcct, c.AccountID, c.Serial), ""), put)
		return cmps, ops, err
	})
	if err != nil {
		return err
	}
	if c.Revoked {
		s.revoked.add(c.Serial)
	}
	return nil
}

func (s *EtcdStore) GetCert(serial string) (CertRecord, error) {
	var c CertRecord
	err := s.getEntity(ekCerts, "cert", normSerial(serial), &c)
	return c, err
}

func (s *EtcdStore) RevokeCert(serial string, at time.Time) error {
	serial = normSerial(serial)
	if at.IsZero() {
		at = now()
	}
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekCerts, serial)
	err := s.update(ctx, "revoke cert", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		kvs, err := s.read(ctx, "revoke cert", k)
		if err != nil {
			return nil, nil, err
		}
		if kvs[0] == nil {
			return nil, nil, fmt.Errorf("control: cert %q: %w", serial, ErrNotFound)
		}
		var c CertRecord
		if err := decodeKV(kvs[0], "cert", serial, &c); err != nil {
			return nil, nil, err
		}
		if c.Revoked {
			return nil, nil, errDone
		}
		c.Revoked, c.RevokedAt = true, at
		put, err := putJSONOp(k, c)
		return []etcdv3.Cmp{unchanged(kvs[0])}, []etcdv3.Op{put}, err
	})
	if err != nil {
		return err
	}
	s.revoked.add(serial)
	return nil
}

// IsRevoked answers from the in-memory set of revoked serials, kept
// current by the watch: no lock, no allocation, no round trip. It never
// fails; while the cluster is unreachable it answers with what it last
// knew.
func (s *EtcdStore) IsRevoked(serial string) (bool, error) {
	return s.revoked.has(normSerial(serial)), nil
}

// ListCerts returns the account's certificates ("" = all) in serial order.
func (s *EtcdStore) ListCerts(accountID string) ([]CertRecord, error) {
	if accountID == "" {
		return etcdListAll[CertRecord](s, ekCerts, "cert", nil)
	}
	return etcdListIndexed[CertRecord](s, ekCertsByAcct, ekCerts, "cert", accountID)
}

// loadRevoked reads every certificate and adds the revoked ones to the
// set (revocation is final: a serial known revoked stays so), returning
// the revision read.
func (s *EtcdStore) loadRevoked(ctx context.Context) (int64, error) {
	var found []string
	rev, err := s.scanPrefix(ctx, "load revoked certs", s.prefix+ekCerts, func(kv *etcdv3.KeyValue) error {
		var c CertRecord
		if err := decodeKV(kv, "cert", strings.TrimPrefix(string(kv.Key), s.prefix+ekCerts), &c); err != nil {
			return err
		}
		if c.Revoked {
			found = append(found, c.Serial)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	s.revoked.add(found...)
	return rev, nil
}

// watchRevoked follows the certificates from revision rev on, adding the
// revoked ones to the set. When the watch breaks (compaction, leader loss,
// cancellation by the server) it reloads everything and watches again,
// until Close.
func (s *EtcdStore) watchRevoked(rev int64) {
	defer close(s.done)
	p := s.prefix + ekCerts
	for {
		started := time.Now()
		s.watchFrom(p, rev)
		// The watch broke: reload, with a short backoff while the
		// cluster does not answer, or refuses watches as soon as they
		// start.
		if time.Since(started) < time.Second {
			select {
			case <-s.base.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		backoff := 100 * time.Millisecond
		for {
			if s.base.Err() != nil {
				return
			}
			ctx, cancel := s.ctx()
			r, err := s.loadRevoked(ctx)
			cancel()
			if err == nil {
				rev = r
				break
			}
			select {
			case <-s.base.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
		}
	}
}

// watchFrom watches the certificates after revision rev until the watch
// ends.
func (s *EtcdStore) watchFrom(p string, rev int64) {
	ctx, cancel := context.WithCancel(etcdv3.WithRequireLeader(s.base))
	defer cancel()
	s.watchMu.Lock()
	s.stopWatch = cancel
	s.watchMu.Unlock()
	for resp := range s.cli.Watch(ctx, p, etcdv3.WithPrefix(), etcdv3.WithRev(rev+1)) {
		if resp.Err() != nil || resp.Canceled {
			return
		}
		for _, ev := range resp.Events {
			if ev.Type != etcdv3.EventPut {
				continue
			}
			var c CertRecord
			if json.Unmarshal(ev.Kv.Value, &c) == nil && c.Revoked {
				s.revoked.add(c.Serial)
			}
		}
	}
}

// breakWatch ends the current watch of the certificates, as a broken
// connection would; the store reloads them and watches again.
func (s *EtcdStore) breakWatch() {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.stopWatch != nil {
		s.stopWatch()
	}
}

// --- tunnels ---

func (s *EtcdStore) PutTunnel(t Tunnel) (Tunnel, error) {
	t.Hostname = normName(t.Hostname)
	if err := checkKey("tunnel hostname", t.Hostname); err != nil {
		return Tunnel{}, err
	}
	if err := checkRef("account id", t.AccountID); err != nil {
		return Tunnel{}, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	in := t
	byHost := s.key(ekTunnelsByHost, t.Hostname)
	err := s.update(ctx, "put tunnel", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		t = in
		kvs, err := s.read(ctx, "put tunnel", byHost)
		if err != nil {
			return nil, nil, err
		}
		var cmps []etcdv3.Cmp
		var ops []etcdv3.Op
		if kvs[0] != nil {
			// The hostname's entry and its tunnel, read together.
			id := string(kvs[0].Value)
			kvs, err := s.read(ctx, "put tunnel", byHost, s.key(ekTunnels, id))
			if err != nil {
				return nil, nil, err
			}
			hkv, tkv := kvs[0], kvs[1]
			if hkv == nil || string(hkv.Value) != id {
				return nil, nil, errRetry // deleted or replaced in between
			}
			if tkv == nil {
				return nil, nil, fmt.Errorf("control: tunnel %q: %w", id, ErrNotFound)
			}
			var old Tunnel
			if err := decodeKV(tkv, "tunnel", id, &old); err != nil {
				return nil, nil, err
			}
			t.ID, t.Created = old.ID, old.Created
			if old.AccountID != t.AccountID {
				ops = append(ops, etcdv3.OpDelete(s.acctIdx(ekTunnelsByAcct, old.AccountID, t.ID)))
			}
			cmps = append(cmps, unchanged(hkv), unchanged(tkv))
		} else {
			id, err := s.freshID(ctx, ekTunnels, "tunnel", t.ID)
			if err != nil {
				return nil, nil, err
			}
			t.ID = id
			if t.Created.IsZero() {
				t.Created = now()
			}
			cmps = append(cmps, absent(byHost), absent(s.key(ekTunnels, t.ID)))
			ops = append(ops, etcdv3.OpPut(byHost, t.ID))
		}
		put, err := putJSONOp(s.key(ekTunnels, t.ID), t)
		ops = append(ops, etcdv3.OpPut(s.acctIdx(ekTunnelsByAcct, t.AccountID, t.ID), ""), put)
		return cmps, ops, err
	})
	if err != nil {
		return Tunnel{}, err
	}
	return t, nil
}

// TunnelByHostname finds a tunnel by its hostname in any case.
func (s *EtcdStore) TunnelByHostname(h string) (Tunnel, error) {
	h = normName(h)
	var t Tunnel
	err := s.byIndex(s.key(ekTunnelsByHost, h), ekTunnels, "tunnel",
		fmt.Errorf("control: tunnel %q: %w", h, ErrNotFound), &t)
	if err != nil {
		return Tunnel{}, err
	}
	return t, nil
}

// ListTunnels returns the account's tunnels ("" = all) in ID order.
func (s *EtcdStore) ListTunnels(accountID string) ([]Tunnel, error) {
	if accountID == "" {
		return etcdListAll[Tunnel](s, ekTunnels, "tunnel", nil)
	}
	return etcdListIndexed[Tunnel](s, ekTunnelsByAcct, ekTunnels, "tunnel", accountID)
}

func (s *EtcdStore) DeleteTunnel(id string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekTunnels, id)
	return s.update(ctx, "delete tunnel", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		kvs, err := s.read(ctx, "delete tunnel", k)
		if err != nil {
			return nil, nil, err
		}
		if kvs[0] == nil {
			return nil, nil, fmt.Errorf("control: tunnel %q: %w", id, ErrNotFound)
		}
		var t Tunnel
		if err := decodeKV(kvs[0], "tunnel", id, &t); err != nil {
			return nil, nil, err
		}
		return []etcdv3.Cmp{unchanged(kvs[0])}, []etcdv3.Op{
			etcdv3.OpDelete(s.key(ekTunnelsByHost, t.Hostname)),
			etcdv3.OpDelete(s.acctIdx(ekTunnelsByAcct, t.AccountID, t.ID)),
			etcdv3.OpDelete(k),
		}, nil
	})
}

// CountTunnels counts the account's tunnels ("" = all) without reading
// them.
func (s *EtcdStore) CountTunnels(accountID string) (int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	p := s.key(ekTunnels, "")
	if accountID != "" {
		p = s.acctIdx(ekTunnelsByAcct, accountID, "")
	}
	resp, err := s.cli.Get(ctx, p, etcdv3.WithPrefix(), etcdv3.WithCountOnly())
	if err != nil {
		return 0, s.fail(ctx, "count tunnels", err)
	}
	return int(resp.Count), nil
}

// --- DNS records ---

func (s *EtcdStore) PutRecord(r DNSRecord) (DNSRecord, error) {
	if err := checkRecord(&r); err != nil {
		return DNSRecord{}, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	in := r
	key := r.Key()
	k := s.key(ekRecords, key)
	err := s.update(ctx, "put record", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		r = in
		kvs, err := s.read(ctx, "put record", k)
		if err != nil {
			return nil, nil, err
		}
		var cmps []etcdv3.Cmp
		var ops []etcdv3.Op
		if kv := kvs[0]; kv != nil {
			var old DNSRecord
			if err := decodeKV(kv, "record", key, &old); err != nil {
				return nil, nil, err
			}
			r.Created = old.Created
			if old.AccountID != r.AccountID {
				ops = append(ops, etcdv3.OpDelete(s.acctIdx(ekRecordsByAcct, old.AccountID, key)))
			}
			cmps = append(cmps, unchanged(kv))
		} else {
			cmps = append(cmps, absent(k))
		}
		if r.Created.IsZero() {
			r.Created = now()
		}
		put, err := putJSONOp(k, r)
		ops = append(ops, etcdv3.OpPut(s.acctIdx(ekRecordsByAcct, r.AccountID, key), ""), put)
		return cmps, ops, err
	})
	if err != nil {
		return DNSRecord{}, err
	}
	return r, nil
}

// RecordsByName returns the records at name (any type) in Type order.
func (s *EtcdStore) RecordsByName(name string) ([]DNSRecord, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	// Names hold no "/": the prefix "name/" takes no longer name.
	p := s.key(ekRecords, normName(name)+"/")
	var out []DNSRecord
	_, err := s.scanPrefix(ctx, "records by name", p, func(kv *etcdv3.KeyValue) error {
		var r DNSRecord
		if err := decodeKV(kv, "record", strings.TrimPrefix(string(kv.Key), s.prefix+ekRecords), &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListRecords returns the account's records ("" = all) in Key order.
func (s *EtcdStore) ListRecords(accountID string) ([]DNSRecord, error) {
	if accountID == "" {
		return etcdListAll[DNSRecord](s, ekRecords, "record", nil)
	}
	return etcdListIndexed[DNSRecord](s, ekRecordsByAcct, ekRecords, "record", accountID)
}

func (s *EtcdStore) DeleteRecord(name, typ string) error {
	key := normName(name) + "/" + typ
	ctx, cancel := s.ctx()
	defer cancel()
	k := s.key(ekRecords, key)
	return s.update(ctx, "delete record", func() ([]etcdv3.Cmp, []etcdv3.Op, error) {
		kvs, err := s.read(ctx, "delete record", k)
		if err != nil {
			return nil, nil, err
		}
		if kvs[0] == nil {
			return nil, nil, fmt.Errorf("control: record %q: %w", key, ErrNotFound)
		}
		var r DNSRecord
		if err := decodeKV(kvs[0], "record", key, &r); err != nil {
			return nil, nil, err
		}
		return []etcdv3.Cmp{unchanged(kvs[0])}, []etcdv3.Op{
			etcdv3.OpDelete(s.acctIdx(ekRecordsByAcct, r.AccountID, key)),
			etcdv3.OpDelete(k),
		}, nil
	})
}

// --- audit ---

// AppendAudit takes the next Seq from the counter key and writes the event
// with it in one transaction conditional on the counter being unchanged:
// Seq grows across every edge sharing the store. The transaction is tried
// first with the counter this process saw last, which spares a read when
// no other edge wrote in between.
func (s *EtcdStore) AppendAudit(e AuditEvent) (AuditEvent, error) {
	if err := checkRef("account id", e.AccountID); err != nil {
		return AuditEvent{}, err
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	ctx, cancel := s.ctx()
	defer cancel()
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	ck := s.key(ekAuditSeq, "")
	for {
		e.Seq = s.seq + 1
		cmp := absent(ck)
		if s.seqRev != 0 {
			cmp = etcdv3.Compare(etcdv3.ModRevision(ck), "=", s.seqRev)
		}
		put, err := putJSONOp(s.key(ekAudit, etcdSeqKey(e.Seq)), e)
		if err != nil {
			return AuditEvent{}, err
		}
		resp, err := s.cli.Txn(ctx).If(cmp).Then(
			etcdv3.OpPut(ck, strconv.FormatUint(e.Seq, 10)),
			etcdv3.OpPut(s.acctIdx(ekAuditByAcct, e.AccountID, etcdSeqKey(e.Seq)), ""),
			put,
		).Else(etcdv3.OpGet(ck)).Commit()
		if err != nil {
			return AuditEvent{}, s.fail(ctx, "append audit", err)
		}
		if resp.Succeeded {
			s.seq, s.seqRev = e.Seq, resp.Header.Revision
			return e, nil
		}
		s.seq, s.seqRev = 0, 0
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			n, err := strconv.ParseUint(string(kvs[0].Value), 10, 64)
			if err != nil {
				return AuditEvent{}, fmt.Errorf("control: audit counter %q: invalid", kvs[0].Value)
			}
			s.seq, s.seqRev = n, kvs[0].ModRevision
		}
		if err := ctx.Err(); err != nil {
			return AuditEvent{}, s.fail(ctx, "append audit", err)
		}
	}
}

// RecentAudit returns the newest limit events of the account ("" = all
// accounts), newest first: one range read in descending key order (the
// account's index, then its events at the same revision).
func (s *EtcdStore) RecentAudit(accountID string, limit int) ([]AuditEvent, error) {
	if limit <= 0 {
		return nil, errAuditLimit
	}
	ctx, cancel := s.ctx()
	defer cancel()
	for {
		out, err := s.recentAuditAt(ctx, accountID, limit)
		if errors.Is(err, etcdv3.ErrCompacted) && ctx.Err() == nil {
			continue
		}
		return out, err
	}
}

func (s *EtcdStore) recentAuditAt(ctx context.Context, accountID string, limit int) ([]AuditEvent, error) {
	var kvs []*etcdv3.KeyValue
	if accountID == "" {
		// Seqs are contiguous: the newest limit events are the range that
		// ends at the counter, read at the counter's revision.
		ck, err := s.cli.Get(ctx, s.key(ekAuditSeq, ""))
		if err != nil {
			return nil, s.fail(ctx, "list audit", err)
		}
		if len(ck.Kvs) == 0 {
			return nil, nil
		}
		last, err := strconv.ParseUint(string(ck.Kvs[0].Value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("control: audit counter %q: invalid", ck.Kvs[0].Value)
		}
		first := uint64(1)
		if last > uint64(limit) {
			first = last - uint64(limit) + 1
		}
		p := s.key(ekAudit, "")
		resp, err := s.cli.Get(ctx, p+etcdSeqKey(first), etcdv3.WithRange(etcdv3.PrefixRangeEnd(p)),
			etcdv3.WithLimit(int64(limit)), etcdv3.WithRev(ck.Header.Revision))
		if err != nil {
			return nil, s.fail(ctx, "list audit", err)
		}
		kvs = resp.Kvs
		slices.Reverse(kvs)
	} else {
		// The account's index entries, newest first (the server sorts the
		// account's keys, not the whole log), then their events.
		p := s.acctIdx(ekAuditByAcct, accountID, "")
		resp, err := s.cli.Get(ctx, p, etcdv3.WithRange(etcdv3.PrefixRangeEnd(p)),
			etcdv3.WithDescendingKeys(), etcdv3.WithLimit(int64(limit)), etcdv3.WithKeysOnly())
		if err != nil {
			return nil, s.fail(ctx, "list audit", err)
		}
		keys := make([]string, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			keys[i] = strings.TrimPrefix(string(kv.Key), p)
		}
		if kvs, err = s.getAt(ctx, "audit", ekAudit, keys, resp.Header.Revision); err != nil {
			return nil, err
		}
	}
	out := make([]AuditEvent, 0, len(kvs))
	for _, kv := range kvs {
		e, err := decodeAudit(kv.Key, kv.Value, false)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ListAudit returns the events of the account ("" = all accounts) with Seq
// above afterSeq, oldest first, at most limit (no bound if limit <= 0).
func (s *EtcdStore) ListAudit(accountID string, afterSeq uint64, limit int) ([]AuditEvent, error) {
	if afterSeq == ^uint64(0) {
		return nil, nil
	}
	from := etcdSeqKey(afterSeq + 1)
	ctx, cancel := s.ctx()
	defer cancel()
	var out []AuditEvent
	decode := func(kv *etcdv3.KeyValue) error {
		e, err := decodeAudit(kv.Key, kv.Value, false)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	}
	if accountID == "" {
		p := s.key(ekAudit, "")
		if _, err := s.scan(ctx, "list audit", p+from, etcdv3.PrefixRangeEnd(p), limit, false, decode); err != nil {
			return nil, err
		}
		return out, nil
	}
	kvs, err := s.indexed(ctx, "audit", ekAuditByAcct, ekAudit, accountID, from, limit)
	if err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		if err := decode(kv); err != nil {
			return nil, err
		}
	}
	return out, nil
}
