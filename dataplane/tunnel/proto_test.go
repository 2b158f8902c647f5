package tunnel

import (
	"bytes"
	"encoding/binary"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	msgs := []*Message{
		{Type: TypeRegister, Register: &Register{Token: "cvt_x", Hostname: "app.example.test", ConnIndex: 2, ConnectorID: "c1", Version: "1.0", Features: []string{"a"}, PrevAttempts: 3}},
		{Type: TypeRegistered, Registered: &Registered{ConnID: "t-1", TunnelID: "t", Location: "local", URL: "http://app.example.test"}},
		{Type: TypeError, Error: &Error{Code: CodeBadToken, Message: "log in again", Permanent: true}},
		{Type: TypeUnregister},
		{Type: TypeDrain, Drain: &Drain{Reason: "bye"}},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range msgs {
		got, err := ReadMessage(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	if _, err := ReadMessage(&buf); err != io.EOF {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
}

func frame(body string) []byte {
	b := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	copy(b[4:], body)
	return b
}

func TestReadMessageRejects(t *testing.T) {
	huge := make([]byte, 4)
	binary.BigEndian.PutUint32(huge, MaxMessage+1)
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"too large":      {huge, "too large"},
		"truncated":      {frame(`{"type":"unregister"}`)[:10], "unexpected EOF"},
		"not json":       {frame(`nope`), "bad control message"},
		"unknown type":   {frame(`{"type":"launch"}`), "unknown control message type"},
		"missing body":   {frame(`{"type":"register"}`), "without its body"},
		"missing answer": {frame(`{"type":"error"}`), "without its body"},
	}
	for name, c := range cases {
		_, err := ReadMessage(bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to mention %q", name, err, c.want)
		}
	}
}

func TestHopByHop(t *testing.T) {
	for _, h := range []string{"Connection", "keep-alive", "Proxy-Connection", "Transfer-Encoding", "UPGRADE", "te"} {
		if !HopByHop([]byte(h)) {
			t.Errorf("%s is hop-by-hop", h)
		}
	}
	for _, h := range []string{"content-type", "tea", "trailer", "host", "cookie"} {
		if HopByHop([]byte(h)) {
			t.Errorf("%s is not hop-by-hop", h)
		}
	}
	for _, h := range []string{"Culvert-Stream", "culvert-connecting-ip", "CULVERT-REQUEST-ID"} {
		if !IsInternal([]byte(h)) {
			t.Errorf("%s is internal", h)
		}
	}
}

// FuzzReadMessage: no input makes ReadMessage panic or allocate beyond the
// message bound, and whatever it accepts writes back and reads the same.
func FuzzReadMessage(f *testing.F) {
	f.Add(frame(`{"type":"register","register":{"token":"t","hostname":"a.b.c"}}`))
	f.Add(frame(`{"type":"drain"}`))
	f.Add(frame(`{"type":"error","error":{"code":"x","permanent":true}}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ReadMessage(bytes.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteMessage(&buf, m); err != nil {
			return // a re-encoding may exceed the bound (escaping)
		}
		m2, err := ReadMessage(&buf)
		if err != nil {
			t.Fatalf("re-read: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message: %+v vs %+v", m, m2)
		}
	})
}
