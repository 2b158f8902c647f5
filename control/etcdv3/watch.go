package etcdv3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// EventType is the kind of an Event.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
)

func (t EventType) String() string {
	if t == EventDelete {
		return "DELETE"
	}
	return "PUT"
}

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	// Kv is the key after the change; for a delete, only its key and
	// ModRevision (the deletion's revision) are set.
	Kv *KeyValue
	// PrevKv is the key before the change, with WithPrevKV (nil if it did
	// not exist).
	PrevKv *KeyValue
}

// WatchResponse is one message of a watch: events of one revision or
// more, or the end of the watch.
type WatchResponse struct {
	Header ResponseHeader
	Events []*Event
	// CompactRevision, if set, is the compaction that removed the start
	// revision: the watch ends (Err is ErrCompacted).
	CompactRevision int64
	// Canceled says that the watch ends with this response.
	Canceled     bool
	CancelReason string

	err error
}

// Err is why the watch ended with this response, nil for a response with
// events.
func (r *WatchResponse) Err() error { return r.err }

// WatchChan delivers the responses of a watch.
type WatchChan <-chan WatchResponse

// Watch follows the changes of key, or of the range the options give
// (WithPrefix, WithRange), from revision WithRev on (the next one if 0);
// WithPrevKV adds the previous values to the events.
//
// The channel is closed when the watch ends: at once when ctx ends or the
// client is closed; after a last response with Canceled set and Err not
// nil when the cluster cancels the watch (ErrCompacted if the start
// revision was compacted) or the stream breaks. The watch is not resumed:
// the caller watches again from the revision it last saw. The caller must
// end ctx, or read the channel until it is closed, to release the watch.
func (c *Client) Watch(ctx context.Context, key string, opts ...OpOption) WatchChan {
	op := newOp(opGet, key, opts)
	ch := make(chan WatchResponse)
	go c.watch(ctx, op, ch)
	return ch
}

func (c *Client) watch(ctx context.Context, op Op, ch chan<- WatchResponse) {
	defer close(ch)
	ctx, cancel := c.join(ctx)
	defer cancel()
	fail := func(err error) {
		if ctx.Err() != nil {
			return
		}
		select {
		case ch <- WatchResponse{Canceled: true, CancelReason: err.Error(), err: err}:
		case <-ctx.Done():
		}
	}
	body, err := json.Marshal(watchRequest{Create: watchCreateRequest{
		Key: op.key, RangeEnd: op.end, StartRevision: i64(op.rev), PrevKv: op.prevKV,
	}})
	if err != nil {
		fail(fmt.Errorf("etcdv3: watch: %w", err))
		return
	}
	for attempt := 0; ; attempt++ {
		token, err := c.authToken(ctx)
		if err != nil {
			fail(err)
			return
		}
		resp, err := c.send(ctx, "/v3/watch", body, token, true)
		if err != nil {
			fail(err)
			return
		}
		if resp.StatusCode != 200 {
			err := decodeBody(resp, "/v3/watch", nil)
			if attempt == 0 && c.rejected(token, err) {
				continue
			}
			fail(err)
			return
		}
		retry := c.stream(ctx, resp.Body, ch, fail, func(err error) bool {
			return attempt == 0 && c.rejected(token, err)
		})
		resp.Body.Close()
		if !retry {
			return
		}
	}
}

var errTooLarge = fmt.Errorf("message larger than %d bytes", MaxResponseBytes)

// msgLimit bounds the bytes read for one message of a stream: n is set
// before each one.
type msgLimit struct {
	r io.Reader
	n int64
}

func (l *msgLimit) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// stream delivers the responses read from body until it ends or fails.
// It returns true, having delivered nothing, if the first message cancels
// the watch for an error reauth accepts: the watch is to be made again.
func (c *Client) stream(ctx context.Context, body io.Reader, ch chan<- WatchResponse, fail func(error), reauth func(error) bool) bool {
	lr := &msgLimit{r: body}
	dec := json.NewDecoder(lr)
	for first := true; ; first = false {
		lr.n = MaxResponseBytes
		var chunk watchChunk
		if err := dec.Decode(&chunk); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			fail(fmt.Errorf("etcdv3: watch: stream ended: %w", err))
			return false
		}
		if e := chunk.Error; e != nil {
			code := e.GrpcCode
			if code == 0 {
				code = e.Code
			}
			err := &Error{Code: code, Message: e.Message, HTTPStatus: e.HTTPCode}
			if first && reauth(err) {
				return true
			}
			fail(err)
			return false
		}
		w := chunk.Result
		if w == nil {
			continue
		}
		r := WatchResponse{Header: w.Header.header(), CompactRevision: int64(w.CompactRevision), Canceled: w.Canceled, CancelReason: w.CancelReason}
		switch {
		case w.CompactRevision != 0:
			r.Canceled = true
			r.err = &Error{Code: 11, Message: ErrCompacted.Error()}
		case w.Canceled:
			r.err = reasonError(w.CancelReason)
			if first && reauth(r.err) {
				return true
			}
		case w.Created && len(w.Events) == 0:
			continue // the watch is set up: nothing to report
		}
		for _, e := range w.Events {
			ev := &Event{Kv: e.Kv.kv(), PrevKv: e.PrevKv.kv()}
			switch e.Type {
			case "", "PUT":
			case "DELETE":
				ev.Type = EventDelete
			default:
				fail(fmt.Errorf("etcdv3: watch: unknown event type %q", e.Type))
				return false
			}
			r.Events = append(r.Events, ev)
		}
		select {
		case ch <- r:
		case <-ctx.Done():
			return false
		}
		if r.Canceled {
			return false
		}
	}
}
