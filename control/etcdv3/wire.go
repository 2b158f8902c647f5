package etcdv3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// The gateway speaks the proto3 JSON mapping of etcd's messages: bytes in
// base64 (encoding/json's []byte), 64-bit integers as strings (numbers are
// accepted too), enums by name, fields at their zero value left out.

// i64 is an int64 written as a JSON string and read from a string or a
// number.
type i64 int64

func (n i64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(n), 10) + `"`), nil
}

func (n *i64) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("etcdv3: int64 %s: %w", b, err)
	}
	*n = i64(v)
	return nil
}

// u64 is i64 for uint64.
type u64 uint64

func (n *u64) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	if s == "null" || s == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("etcdv3: uint64 %s: %w", b, err)
	}
	*n = u64(v)
	return nil
}

// Requests.

type rangeRequest struct {
	Key       []byte `json:"key"`
	RangeEnd  []byte `json:"range_end,omitempty"`
	Limit     i64    `json:"limit,omitempty"`
	Revision  i64    `json:"revision,omitempty"`
	KeysOnly  bool   `json:"keys_only,omitempty"`
	CountOnly bool   `json:"count_only,omitempty"`
	SortOrder string `json:"sort_order,omitempty"` // "DESCEND", or "" for key order
}

type putRequest struct {
	Key    []byte `json:"key"`
	Value  []byte `json:"value"`
	PrevKv bool   `json:"prev_kv,omitempty"`
}

type deleteRangeRequest struct {
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"range_end,omitempty"`
	PrevKv   bool   `json:"prev_kv,omitempty"`
}

type requestOp struct {
	Range  *rangeRequest       `json:"request_range,omitempty"`
	Put    *putRequest         `json:"request_put,omitempty"`
	Delete *deleteRangeRequest `json:"request_delete_range,omitempty"`
}

type compare struct {
	Result         string `json:"result"`
	Target         string `json:"target"`
	Key            []byte `json:"key"`
	CreateRevision *i64   `json:"create_revision,omitempty"`
	ModRevision    *i64   `json:"mod_revision,omitempty"`
}

type txnRequest struct {
	Compare []compare   `json:"compare,omitempty"`
	Success []requestOp `json:"success,omitempty"`
	Failure []requestOp `json:"failure,omitempty"`
}

type watchCreateRequest struct {
	Key           []byte `json:"key"`
	RangeEnd      []byte `json:"range_end,omitempty"`
	StartRevision i64    `json:"start_revision,omitempty"`
	PrevKv        bool   `json:"prev_kv,omitempty"`
}

type watchRequest struct {
	Create watchCreateRequest `json:"create_request"`
}

// Responses.

type wireHeader struct {
	ClusterID u64 `json:"cluster_id"`
	MemberID  u64 `json:"member_id"`
	Revision  i64 `json:"revision"`
	RaftTerm  u64 `json:"raft_term"`
}

func (h wireHeader) header() ResponseHeader {
	return ResponseHeader{ClusterID: uint64(h.ClusterID), MemberID: uint64(h.MemberID), Revision: int64(h.Revision), RaftTerm: uint64(h.RaftTerm)}
}

type wireKV struct {
	Key            []byte `json:"key"`
	CreateRevision i64    `json:"create_revision"`
	ModRevision    i64    `json:"mod_revision"`
	Version        i64    `json:"version"`
	Value          []byte `json:"value"`
	Lease          i64    `json:"lease"`
}

func (kv *wireKV) kv() *KeyValue {
	if kv == nil {
		return nil
	}
	return &KeyValue{Key: kv.Key, CreateRevision: int64(kv.CreateRevision), ModRevision: int64(kv.ModRevision),
		Version: int64(kv.Version), Value: kv.Value, Lease: int64(kv.Lease)}
}

func kvs(w []wireKV) []*KeyValue {
	if len(w) == 0 {
		return nil
	}
	out := make([]*KeyValue, len(w))
	for i := range w {
		out[i] = w[i].kv()
	}
	return out
}

type wireRange struct {
	Header wireHeader `json:"header"`
	Kvs    []wireKV   `json:"kvs"`
	More   bool       `json:"more"`
	Count  i64        `json:"count"`
}

func (r *wireRange) resp() *RangeResponse {
	return &RangeResponse{Header: r.Header.header(), Kvs: kvs(r.Kvs), More: r.More, Count: int64(r.Count)}
}

type wirePut struct {
	Header wireHeader `json:"header"`
	PrevKv *wireKV    `json:"prev_kv"`
}

func (r *wirePut) resp() *PutResponse {
	return &PutResponse{Header: r.Header.header(), PrevKv: r.PrevKv.kv()}
}

type wireDelete struct {
	Header  wireHeader `json:"header"`
	Deleted i64        `json:"deleted"`
	PrevKvs []wireKV   `json:"prev_kvs"`
}

func (r *wireDelete) resp() *DeleteResponse {
	return &DeleteResponse{Header: r.Header.header(), Deleted: int64(r.Deleted), PrevKvs: kvs(r.PrevKvs)}
}

type wireTxn struct {
	Header    wireHeader `json:"header"`
	Succeeded bool       `json:"succeeded"`
	Responses []struct {
		Range  *wireRange  `json:"response_range"`
		Put    *wirePut    `json:"response_put"`
		Delete *wireDelete `json:"response_delete_range"`
	} `json:"responses"`
}

type wireEvent struct {
	Type   string  `json:"type"`
	Kv     *wireKV `json:"kv"`
	PrevKv *wireKV `json:"prev_kv"`
}

type wireWatch struct {
	Header          wireHeader  `json:"header"`
	Created         bool        `json:"created"`
	Canceled        bool        `json:"canceled"`
	CompactRevision i64         `json:"compact_revision"`
	CancelReason    string      `json:"cancel_reason"`
	Events          []wireEvent `json:"events"`
}

// watchChunk is one message of the watch stream: a response, or the
// error that ends the stream.
type watchChunk struct {
	Result *wireWatch `json:"result"`
	Error  *struct {
		GrpcCode int             `json:"grpc_code"`
		Code     int             `json:"code"`
		HTTPCode int             `json:"http_code"`
		Message  string          `json:"message"`
		Details  json.RawMessage `json:"details"`
	} `json:"error"`
}
