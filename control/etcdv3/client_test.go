package etcdv3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/culvert-tunnel/culvert/control/etcdtest"
)

// newClient is a client of endpoints, closed when the test ends.
func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// raw posts body to the gateway's path, failing the test unless it
// answers 200.
func raw(t *testing.T, ep, token, path, body string) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+ep+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d: %s", path, body, resp.StatusCode, b)
	}
	return b
}

// noneLeft waits until no goroutine's stack holds any of frames.
func noneLeft(t *testing.T, frames ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		left := ""
		for _, f := range frames {
			if bytes.Contains(buf, []byte(f)) {
				left = f
			}
		}
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine in %s is left:\n%s", left, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustPut(t *testing.T, c *Client, k, v string) int64 {
	t.Helper()
	resp, err := c.Put(testCtx(t), k, v)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func TestTxnCompare(t *testing.T) {
	c := newClient(t, Config{Endpoints: []string{etcdtest.Start(t)}})
	ctx := testCtx(t)

	// Absent: CreateRevision = 0 holds, the Then branch applies.
	resp, err := c.Txn(ctx).If(Compare(CreateRevision("k"), "=", 0)).
		Then(OpPut("k", "v1"), OpPut("idx/k", "")).Else(OpGet("k")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded || len(resp.Responses) != 2 || resp.Responses[0].Put == nil || resp.Header.Revision == 0 {
		t.Fatalf("create txn = %+v", resp)
	}
	rev := resp.Header.Revision

	// Present: the same comparison fails, the Else branch reads.
	resp, err = c.Txn(ctx).If(Compare(CreateRevision("k"), "=", 0)).
		Then(OpPut("k", "v2")).Else(OpGet("k"), OpGet("missing")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded || len(resp.Responses) != 2 {
		t.Fatalf("second create txn = %+v", resp)
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) != 1 || string(kvs[0].Key) != "k" || string(kvs[0].Value) != "v1" ||
		kvs[0].CreateRevision != rev || kvs[0].ModRevision != rev || kvs[0].Version != 1 {
		t.Fatalf("else get = %+v", kvs)
	}
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); kvs != nil {
		t.Fatalf("get of a missing key = %+v", kvs)
	}

	// ModRevision: the revision read holds; a stale one fails.
	resp, err = c.Txn(ctx).If(Compare(ModRevision("k"), "=", rev)).
		Then(OpPut("k", "v2"), OpDelete("idx/k")).Commit()
	if err != nil || !resp.Succeeded || resp.Responses[1].Delete == nil || resp.Responses[1].Delete.Deleted != 1 {
		t.Fatalf("mod txn = %+v, %v", resp, err)
	}
	resp, err = c.Txn(ctx).If(Compare(ModRevision("k"), "=", rev)).Then(OpPut("k", "v3")).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("stale mod txn = %+v, %v", resp, err)
	}
	for _, tc := range []struct {
		op   string
		v    int64
		want bool
	}{{"!=", rev, true}, {">", rev, true}, {"<", rev, false}, {"<", rev + 100, true}, {"=", rev, false}} {
		resp, err := c.Txn(ctx).If(Compare(ModRevision("k"), tc.op, tc.v)).Commit()
		if err != nil || resp.Succeeded != tc.want {
			t.Errorf("ModRevision %s %d: %+v, %v; want %v", tc.op, tc.v, resp, err, tc.want)
		}
	}
	g, err := c.Get(ctx, "k")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "v2" {
		t.Fatalf("Get(k) = %+v, %v", g, err)
	}
	if _, err := c.Txn(ctx).If(Compare(ModRevision("k"), "~", 1)).Commit(); err == nil {
		t.Fatal("unknown operator accepted")
	}
	if _, err := c.Txn(ctx).If(ModRevision("k")).Commit(); err == nil {
		t.Fatal("comparison without operator accepted")
	}
}

func TestRange(t *testing.T) {
	c := newClient(t, Config{Endpoints: []string{etcdtest.Start(t)}})
	ctx := testCtx(t)
	var revs []int64
	for _, k := range []string{"p/a", "p/b", "p/c", "p/d", "p/e", "p0", "q"} {
		revs = append(revs, mustPut(t, c, k, "value of "+k))
	}
	mustPut(t, c, "p/a", "changed")

	keys := func(kvs []*KeyValue) string {
		var s []string
		for _, kv := range kvs {
			s = append(s, string(kv.Key))
		}
		return strings.Join(s, ",")
	}
	r, err := c.Get(ctx, "p/", WithPrefix(), WithLimit(2))
	if err != nil {
		t.Fatal(err)
	}
	if keys(r.Kvs) != "p/a,p/b" || !r.More || r.Count != 5 || string(r.Kvs[0].Value) != "changed" {
		t.Fatalf("prefix limit 2 = %s more=%v count=%d", keys(r.Kvs), r.More, r.Count)
	}
	r, err = c.Get(ctx, "p/c", WithRange(PrefixRangeEnd("p/")), WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if keys(r.Kvs) != "p/c,p/d,p/e" || r.More || r.Kvs[0].Value != nil || r.Kvs[0].ModRevision != revs[2] {
		t.Fatalf("keys only = %s %+v", keys(r.Kvs), r.Kvs[0])
	}
	r, err = c.Get(ctx, "p/", WithPrefix(), WithCountOnly())
	if err != nil || r.Count != 5 || len(r.Kvs) != 0 {
		t.Fatalf("count only = %+v, %v", r, err)
	}
	r, err = c.Get(ctx, "p/a", WithRev(revs[0]))
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "value of p/a" {
		t.Fatalf("at revision %d = %+v, %v", revs[0], r, err)
	}
	r, err = c.Get(ctx, "", WithPrefix(), WithCountOnly())
	if err != nil || r.Count != 7 {
		t.Fatalf("every key = %+v, %v", r, err)
	}
	if _, err := c.Get(ctx, "p/a", WithRev(1<<40)); !errors.Is(err, ErrFutureRev) || errors.Is(err, ErrCompacted) {
		t.Fatalf("future revision: %v", err)
	}
	d, err := c.Delete(ctx, "p/", WithPrefix(), WithPrevKV())
	if err != nil || d.Deleted != 5 || len(d.PrevKvs) != 5 {
		t.Fatalf("Delete(prefix) = %+v, %v", d, err)
	}

	for in, want := range map[string]string{"a": "b", "a/": "a0", "a\xff": "b", "\xff\xff": "\x00", "": "\x00"} {
		if got := PrefixRangeEnd(in); got != want {
			t.Errorf("PrefixRangeEnd(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWatch(t *testing.T) {
	c := newClient(t, Config{Endpoints: []string{etcdtest.Start(t)}})
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	start := mustPut(t, c, "w/a", "1")
	mustPut(t, c, "other", "x")
	mustPut(t, c, "w/b", "2")
	if _, err := c.Delete(ctx, "w/a"); err != nil {
		t.Fatal(err)
	}

	// From a past revision: the history, then what follows.
	wc := c.Watch(ctx, "w/", WithPrefix(), WithRev(start), WithPrevKV())
	type ev struct {
		typ       EventType
		key, prev string
	}
	var got []ev
	next := func(n int) {
		t.Helper()
		for len(got) < n {
			select {
			case r, ok := <-wc:
				if !ok || r.Err() != nil {
					t.Fatalf("watch ended: %v %+v", ok, r)
				}
				if r.Header.Revision == 0 {
					t.Errorf("response without a header revision: %+v", r)
				}
				for _, e := range r.Events {
					x := ev{e.Type, string(e.Kv.Key), ""}
					if e.PrevKv != nil {
						x.prev = string(e.PrevKv.Value)
					}
					got = append(got, x)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("events so far %+v, want %d", got, n)
			}
		}
	}
	next(3)
	mustPut(t, c, "w/b", "3")
	mustPut(t, c, "w0", "not in the prefix")
	if _, err := c.Delete(ctx, "w/b"); err != nil {
		t.Fatal(err)
	}
	next(5)
	want := []ev{{EventPut, "w/a", ""}, {EventPut, "w/b", ""}, {EventDelete, "w/a", "1"}, {EventPut, "w/b", "2"}, {EventDelete, "w/b", "3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %+v\nwant %+v", got, want)
	}

	// Cancelling ends the watch: the channel closes, nothing is left.
	cancel()
	select {
	case r, ok := <-wc:
		if ok {
			t.Fatalf("response after cancel: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}
	c.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	noneLeft(t, "etcdv3.(*Client)", "net/http.(*persistConn)")
}

func TestWatchEndsOnClose(t *testing.T) {
	c, err := New(Config{Endpoints: []string{etcdtest.Start(t)}})
	if err != nil {
		t.Fatal(err)
	}
	rev := mustPut(t, c, "k", "v")
	wc := c.Watch(context.Background(), "k", WithRev(rev))
	if r := <-wc; len(r.Events) != 1 {
		t.Fatalf("first response = %+v", r)
	}
	c.Close()
	select {
	case _, ok := <-wc:
		if ok {
			t.Fatal("response after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after Close")
	}
	if _, err := c.Get(context.Background(), "k"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	noneLeft(t, "etcdv3.(*Client)")
}

func TestCompacted(t *testing.T) {
	ep := etcdtest.Start(t)
	c := newClient(t, Config{Endpoints: []string{ep}})
	ctx := testCtx(t)
	old := mustPut(t, c, "k", "1")
	mustPut(t, c, "k", "2")
	last := mustPut(t, c, "k", "3")
	raw(t, ep, "", "/v3/kv/compaction", fmt.Sprintf(`{"revision":"%d","physical":true}`, last))

	_, err := c.Get(ctx, "k", WithRev(old))
	if !errors.Is(err, ErrCompacted) {
		t.Fatalf("Get at a compacted revision: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != 11 || e.HTTPStatus == 0 {
		t.Fatalf("error = %#v", err)
	}
	_, err = c.Txn(ctx).Then(OpGet("k", WithRev(old))).Commit()
	if !errors.Is(err, ErrCompacted) {
		t.Fatalf("Txn get at a compacted revision: %v", err)
	}

	wc := c.Watch(ctx, "k", WithRev(old))
	select {
	case r, ok := <-wc:
		if !ok || !r.Canceled || !errors.Is(r.Err(), ErrCompacted) || r.CompactRevision != last {
			t.Fatalf("watch from a compacted revision = %v %+v", ok, r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
	}
	if r, ok := <-wc; ok {
		t.Fatalf("response after the compaction: %+v", r)
	}
}

func TestAuth(t *testing.T) {
	ep := etcdtest.Start(t)
	ctx := testCtx(t)
	// Credentials for a cluster without auth: no token is sent, until
	// auth is enabled.
	c := newClient(t, Config{Endpoints: []string{ep}, Username: "root", Password: "rootpw"})
	if _, err := c.Get(ctx, "k"); err != nil {
		t.Fatalf("Get with auth disabled: %v", err)
	}
	raw(t, ep, "", "/v3/auth/user/add", `{"name":"root","password":"rootpw"}`)
	raw(t, ep, "", "/v3/auth/user/grant", `{"user":"root","role":"root"}`)
	raw(t, ep, "", "/v3/auth/enable", `{}`)

	anon := newClient(t, Config{Endpoints: []string{ep}})
	if _, err := anon.Get(ctx, "k"); !errors.Is(err, ErrUserEmpty) {
		t.Fatalf("Get without credentials: %v", err)
	}
	bad := newClient(t, Config{Endpoints: []string{ep}, Username: "root", Password: "wrong"})
	if _, err := bad.Get(ctx, "k"); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Get with a wrong password: %v", err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rev := mustPut(t, c, "k", "v")
	wc := c.Watch(wctx, "k", WithRev(rev))
	select {
	case r := <-wc:
		if len(r.Events) != 1 || string(r.Events[0].Kv.Value) != "v" {
			t.Fatalf("watch with auth = %+v (%v)", r, r.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}

	// A token the cluster no longer knows (as after its TTL) is replaced.
	for _, call := range []func() error{
		func() error { _, err := c.Get(ctx, "k"); return err },
		func() error {
			_, err := c.Txn(ctx).If(Compare(CreateRevision("k"), ">", 0)).Then(OpPut("k", "w")).Commit()
			return err
		},
		func() error {
			r := <-c.Watch(ctx, "k", WithRev(1))
			return r.Err()
		},
	} {
		c.tokenMu.Lock()
		c.token = "expired.1"
		c.tokenMu.Unlock()
		if err := call(); err != nil {
			t.Fatalf("call with an expired token: %v", err)
		}
		c.tokenMu.Lock()
		tok := c.token
		c.tokenMu.Unlock()
		if tok == "" || tok == "expired.1" {
			t.Fatalf("token after renewal = %q", tok)
		}
	}
}

func TestEndpointFailover(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	ep := etcdtest.Start(t)
	c := newClient(t, Config{Endpoints: []string{dead, "http://" + ep}})
	ctx := testCtx(t)
	rev := mustPut(t, c, "k", "v")
	if c.cur.Load() != 1 {
		t.Fatalf("current endpoint = %d, want 1", c.cur.Load())
	}
	wc := c.Watch(ctx, "k", WithRev(rev))
	if r := <-wc; len(r.Events) != 1 {
		t.Fatalf("watch through the second endpoint = %+v (%v)", r, r.Err())
	}
	if got := c.Endpoints(); len(got) != 2 || got[0] != dead {
		t.Fatalf("Endpoints() = %v", got)
	}

	all := newClient(t, Config{Endpoints: []string{dead}})
	if _, err := all.Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Get with no endpoint up: %v", err)
	}
	for _, bad := range []string{"unix:///run/etcd.sock", "http://h:1/path", "http://", "http://u:p@h:1"} {
		if _, err := New(Config{Endpoints: []string{bad}}); err == nil {
			t.Errorf("New accepted endpoint %q", bad)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted no endpoints")
	}
}

// fake is a gateway answering every request with handler.
func fake(t *testing.T, handler http.HandlerFunc) *Client {
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return newClient(t, Config{Endpoints: []string{srv.URL}})
}

func TestDecoding(t *testing.T) {
	// 64-bit integers as numbers or strings, bools and enums left out at
	// their defaults.
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"header":{"cluster_id":"18446744073709551615","member_id":7,"revision":12,"raft_term":"3"},
			"kvs":[{"key":"YQ==","create_revision":5,"mod_revision":"12","version":"2","value":"eA=="}],"count":1}`)
	})
	r, err := c.Get(testCtx(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.ClusterID != 1<<64-1 || r.Header.MemberID != 7 || r.Header.Revision != 12 || r.Count != 1 || r.More ||
		string(r.Kvs[0].Key) != "a" || string(r.Kvs[0].Value) != "x" || r.Kvs[0].CreateRevision != 5 || r.Kvs[0].ModRevision != 12 {
		t.Fatalf("decoded %+v %+v", r, r.Kvs[0])
	}

	c = fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}`)
	})
	_, err = c.Put(testCtx(t), "a", "b")
	var e *Error
	if !errors.Is(err, ErrNoLeader) || !errors.As(err, &e) || e.Code != 14 || e.HTTPStatus != 503 {
		t.Fatalf("no leader: %#v", err)
	}

	c = fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `404 page not found`)
	})
	if _, err := c.Get(testCtx(t), "a"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("not a gateway: %v", err)
	}
}

func TestWatchStreamEnds(t *testing.T) {
	for name, body := range map[string]string{
		"broken": `{"result":{"header":{"revision":"3"},"created":true}}` + "\n" +
			`{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"YQ==","mod_revision":"4"}}]}}` + "\n",
		"error": `{"result":{"header":{"revision":"3"},"created":true}}` + "\n" +
			`{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"YQ==","mod_revision":"4"}}]}}` + "\n" +
			`{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}`,
		"canceled": `{"result":{"header":{"revision":"3"},"created":true}}` + "\n" +
			`{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"YQ==","mod_revision":"4"}}]}}` + "\n" +
			`{"result":{"header":{"revision":"4"},"canceled":true,"cancel_reason":"rpc error: code = Unavailable desc = etcdserver: no leader"}}` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := fake(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Grpc-Metadata-Hasleader") != "true" {
					t.Errorf("no leader requirement in %v", r.Header)
				}
				io.WriteString(w, body)
			})
			wc := c.Watch(WithRequireLeader(testCtx(t)), "a")
			r := <-wc
			if len(r.Events) != 1 || r.Events[0].Type != EventPut || r.Err() != nil {
				t.Fatalf("first response = %+v", r)
			}
			r, ok := <-wc
			if !ok || !r.Canceled || r.Err() == nil {
				t.Fatalf("last response = %v %+v", ok, r)
			}
			if name != "broken" && !errors.Is(r.Err(), ErrNoLeader) {
				t.Fatalf("last response's error: %v", r.Err())
			}
			if _, ok := <-wc; ok {
				t.Fatal("channel not closed")
			}
		})
	}
}

func TestContextBoundsCalls(t *testing.T) {
	// A gateway that never answers: calls end with their context, and the
	// connections are closed.
	hung := make(chan struct{}, 16)
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		// (Read the body: the server sees the client leave only then.)
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v3/watch" {
			io.WriteString(w, `{"result":{"header":{"revision":"3"},"created":true}}`+"\n")
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
		hung <- struct{}{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Txn(ctx).Then(OpPut("a", "b")).Commit()
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("Txn on a hung gateway: %v after %v", err, time.Since(start))
	}

	wctx, wcancel := context.WithCancel(context.Background())
	wc := c.Watch(wctx, "a")
	time.Sleep(100 * time.Millisecond)
	wcancel()
	if r, ok := <-wc; ok {
		t.Fatalf("response after cancel: %+v", r)
	}
	for range 2 {
		select {
		case <-hung:
		case <-time.After(5 * time.Second):
			t.Fatal("the server still holds a request: its connection was not closed")
		}
	}
	noneLeft(t, "etcdv3.(*Client)")
}
