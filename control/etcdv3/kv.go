package etcdv3

import (
	"context"
	"fmt"
)

// ResponseHeader is the header of every response.
type ResponseHeader struct {
	ClusterID, MemberID uint64
	// Revision is the store's revision when the request was applied.
	Revision int64
	RaftTerm uint64
}

// KeyValue is a key and its value, with their revisions.
type KeyValue struct {
	Key []byte
	// CreateRevision is the revision of the key's creation, ModRevision
	// that of its last change, Version the number of changes since its
	// creation.
	CreateRevision, ModRevision, Version int64
	Value                                []byte
	Lease                                int64
}

// RangeResponse is the answer to a get.
type RangeResponse struct {
	Header ResponseHeader
	// Kvs are the keys read, in key order (none with WithCountOnly).
	Kvs []*KeyValue
	// More says that WithLimit left keys out.
	More bool
	// Count is the number of keys in the range.
	Count int64
}

// GetKvs returns r's keys; nil if r is nil.
func (r *RangeResponse) GetKvs() []*KeyValue {
	if r == nil {
		return nil
	}
	return r.Kvs
}

// PutResponse is the answer to a put.
type PutResponse struct {
	Header ResponseHeader
	PrevKv *KeyValue // with WithPrevKV, if the key existed
}

// DeleteResponse is the answer to a delete.
type DeleteResponse struct {
	Header  ResponseHeader
	Deleted int64
	PrevKvs []*KeyValue // with WithPrevKV
}

// TxnResponse is the answer to a transaction.
type TxnResponse struct {
	Header ResponseHeader
	// Succeeded says that every comparison held: Responses answer the
	// Then operations, else the Else ones.
	Succeeded bool
	Responses []*ResponseOp
}

// ResponseOp is the answer to one operation of a transaction: one field
// is set, that of the operation's kind.
type ResponseOp struct {
	Range  *RangeResponse
	Put    *PutResponse
	Delete *DeleteResponse
}

// GetResponseRange returns the answer to a get; nil if r answers another
// kind of operation.
func (r *ResponseOp) GetResponseRange() *RangeResponse {
	if r == nil {
		return nil
	}
	return r.Range
}

type opKind int

const (
	opGet opKind = iota
	opPut
	opDelete
)

// Op is one operation: a get, put or delete.
type Op struct {
	kind      opKind
	key, end  []byte
	val       []byte
	prefix    bool
	rev       int64
	limit     int64
	keysOnly  bool
	countOnly bool
	descend   bool
	prevKV    bool
}

// OpOption modifies an Op, or a Watch.
type OpOption func(*Op)

// WithRange makes the operation cover the keys in [key, end).
func WithRange(end string) OpOption { return func(op *Op) { op.end = []byte(end) } }

// WithPrefix makes the operation cover the keys starting with key (every
// key if key is "").
func WithPrefix() OpOption { return func(op *Op) { op.prefix = true } }

// WithRev reads at revision rev (0: the latest); for Watch, it is the
// first revision reported.
func WithRev(rev int64) OpOption { return func(op *Op) { op.rev = rev } }

// WithLimit bounds the number of keys a get returns (0: no bound).
func WithLimit(n int64) OpOption { return func(op *Op) { op.limit = n } }

// WithKeysOnly makes a get return keys without values.
func WithKeysOnly() OpOption { return func(op *Op) { op.keysOnly = true } }

// WithDescendingKeys makes a get return its keys in descending order, so
// that with WithLimit it returns the last keys of the range. The server
// reads the whole range to sort it: keep such ranges small.
func WithDescendingKeys() OpOption { return func(op *Op) { op.descend = true } }

// WithCountOnly makes a get return only the count of keys.
func WithCountOnly() OpOption { return func(op *Op) { op.countOnly = true } }

// WithPrevKV makes a put or delete return the previous key-values, and a
// watch report them in its events.
func WithPrevKV() OpOption { return func(op *Op) { op.prevKV = true } }

func newOp(kind opKind, key string, opts []OpOption) Op {
	op := Op{kind: kind, key: []byte(key)}
	for _, o := range opts {
		o(&op)
	}
	if op.prefix {
		if len(op.key) == 0 {
			op.key, op.end = []byte{0}, []byte{0}
		} else {
			op.end = []byte(PrefixRangeEnd(key))
		}
	}
	return op
}

// OpGet is a get of key; the options make it a range.
func OpGet(key string, opts ...OpOption) Op { return newOp(opGet, key, opts) }

// OpPut is a put of val at key.
func OpPut(key, val string, opts ...OpOption) Op {
	op := newOp(opPut, key, opts)
	op.val = []byte(val)
	return op
}

// OpDelete is a delete of key; the options make it a range.
func OpDelete(key string, opts ...OpOption) Op { return newOp(opDelete, key, opts) }

// PrefixRangeEnd is the end of the range of the keys starting with
// prefix: prefix with its last byte below 0xff incremented and what
// follows removed ("\x00", every key from prefix on, if there is none).
func PrefixRangeEnd(prefix string) string {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return "\x00"
}

func (op Op) wire() requestOp {
	switch op.kind {
	case opPut:
		return requestOp{Put: &putRequest{Key: op.key, Value: op.val, PrevKv: op.prevKV}}
	case opDelete:
		return requestOp{Delete: &deleteRangeRequest{Key: op.key, RangeEnd: op.end, PrevKv: op.prevKV}}
	}
	return requestOp{Range: op.rangeRequest()}
}

func (op Op) rangeRequest() *rangeRequest {
	r := &rangeRequest{Key: op.key, RangeEnd: op.end, Limit: i64(op.limit), Revision: i64(op.rev),
		KeysOnly: op.keysOnly, CountOnly: op.countOnly}
	if op.descend {
		r.SortOrder = "DESCEND" // sort_target KEY is the default
	}
	return r
}

// Get reads key, or the range the options give.
func (c *Client) Get(ctx context.Context, key string, opts ...OpOption) (*RangeResponse, error) {
	var out wireRange
	if err := c.call(ctx, "/v3/kv/range", newOp(opGet, key, opts).rangeRequest(), &out, true); err != nil {
		return nil, err
	}
	return out.resp(), nil
}

// Put writes val at key.
func (c *Client) Put(ctx context.Context, key, val string, opts ...OpOption) (*PutResponse, error) {
	op := OpPut(key, val, opts...)
	var out wirePut
	if err := c.call(ctx, "/v3/kv/put", op.wire().Put, &out, false); err != nil {
		return nil, err
	}
	return out.resp(), nil
}

// Delete removes key, or the range the options give.
func (c *Client) Delete(ctx context.Context, key string, opts ...OpOption) (*DeleteResponse, error) {
	var out wireDelete
	if err := c.call(ctx, "/v3/kv/deleterange", newOp(opDelete, key, opts).wire().Delete, &out, false); err != nil {
		return nil, err
	}
	return out.resp(), nil
}

// Cmp is a comparison of a transaction: a key's revision against a
// value.
type Cmp struct {
	target string // "CREATE" or "MOD"
	key    []byte
	result string
	v      int64
	err    error
}

// CreateRevision compares the revision of key's creation (0 if the key
// is absent).
func CreateRevision(key string) Cmp { return Cmp{target: "CREATE", key: []byte(key)} }

// ModRevision compares the revision of key's last change (0 if the key is
// absent).
func ModRevision(key string) Cmp { return Cmp{target: "MOD", key: []byte(key)} }

// Compare completes a comparison: op is "=", "!=", "<" or ">".
func Compare(c Cmp, op string, v int64) Cmp {
	switch op {
	case "=":
		c.result = "EQUAL"
	case "!=":
		c.result = "NOT_EQUAL"
	case "<":
		c.result = "LESS"
	case ">":
		c.result = "GREATER"
	default:
		c.err = fmt.Errorf("etcdv3: compare: unknown operator %q", op)
	}
	c.v = v
	return c
}

func (c Cmp) wire() (compare, error) {
	if c.err != nil {
		return compare{}, c.err
	}
	if c.result == "" {
		return compare{}, fmt.Errorf("etcdv3: compare of %q: no operator (use Compare)", c.key)
	}
	w := compare{Result: c.result, Target: c.target, Key: c.key}
	v := i64(c.v)
	if c.target == "CREATE" {
		w.CreateRevision = &v
	} else {
		w.ModRevision = &v
	}
	return w, nil
}

// Txn is a transaction being built: If(comparisons).Then(ops).Else(ops),
// applied by Commit in one step.
type Txn struct {
	c         *Client
	ctx       context.Context
	cmps      []Cmp
	then, els []Op
}

// Txn starts a transaction bound by ctx.
func (c *Client) Txn(ctx context.Context) *Txn { return &Txn{c: c, ctx: ctx} }

// If adds comparisons, which must all hold for Then to apply.
func (t *Txn) If(cs ...Cmp) *Txn { t.cmps = append(t.cmps, cs...); return t }

// Then adds operations applied if the comparisons hold.
func (t *Txn) Then(ops ...Op) *Txn { t.then = append(t.then, ops...); return t }

// Else adds operations applied if a comparison fails.
func (t *Txn) Else(ops ...Op) *Txn { t.els = append(t.els, ops...); return t }

// Commit applies the transaction.
func (t *Txn) Commit() (*TxnResponse, error) {
	var req txnRequest
	readOnly := true
	for _, c := range t.cmps {
		w, err := c.wire()
		if err != nil {
			return nil, err
		}
		req.Compare = append(req.Compare, w)
	}
	for _, op := range t.then {
		req.Success = append(req.Success, op.wire())
		readOnly = readOnly && op.kind == opGet
	}
	for _, op := range t.els {
		req.Failure = append(req.Failure, op.wire())
		readOnly = readOnly && op.kind == opGet
	}
	var out wireTxn
	if err := t.c.call(t.ctx, "/v3/kv/txn", &req, &out, readOnly); err != nil {
		return nil, err
	}
	resp := &TxnResponse{Header: out.Header.header(), Succeeded: out.Succeeded, Responses: make([]*ResponseOp, len(out.Responses))}
	for i, r := range out.Responses {
		ro := &ResponseOp{}
		switch {
		case r.Range != nil:
			ro.Range = r.Range.resp()
		case r.Put != nil:
			ro.Put = r.Put.resp()
		case r.Delete != nil:
			ro.Delete = r.Delete.resp()
		}
		resp.Responses[i] = ro
	}
	return resp, nil
}
