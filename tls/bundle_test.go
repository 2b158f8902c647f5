package culverttls

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBundleRoundTrip(t *testing.T) {
	f := newFixture(t)
	data := mustMarshal(t, f.bundle)
	if types := blockTypes(data); !reflect.DeepEqual(types, []string{"CERTIFICATE", "PRIVATE KEY", "CULVERT TUNNEL TOKEN"}) {
		t.Fatalf("block types %q", types)
	}
	b, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Cert.Equal(f.bundle.Cert) {
		t.Fatal("certificate differs")
	}
	if !publicKeysEqual(b.Key.Public(), f.bundle.Key.Public()) {
		t.Fatal("key differs")
	}
	if !reflect.DeepEqual(b.Token, f.bundle.Token) {
		t.Fatalf("token %+v, want %+v", b.Token, f.bundle.Token)
	}
	if again := mustMarshal(t, b); !bytes.Equal(again, data) {
		t.Fatal("re-marshalled bundle differs")
	}

	// The token block is plain JSON with the documented field names.
	var raw map[string]any
	blocks := splitBlocks(t, data)
	if err := json.Unmarshal(blocks["CULVERT TUNNEL TOKEN"], &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"zone_id", "account_id", "api_token", "zone", "edge_ca", "tunnel_server_name", "edges"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("token JSON has no %q: %v", k, raw)
		}
	}

	// Blocks in another order, with text around them, parse the same.
	reordered := bytes.Join([][]byte{
		[]byte("culvert origin certificate\n"),
		pemBlock("CULVERT TUNNEL TOKEN", blocks["CULVERT TUNNEL TOKEN"]),
		pemBlock("PRIVATE KEY", blocks["PRIVATE KEY"]),
		pemBlock("CERTIFICATE", blocks["CERTIFICATE"]),
	}, []byte("\n"))
	b2, err := ParseBundle(reordered)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) != 0 || !reflect.DeepEqual(b2.Token, b.Token) {
		t.Fatal("reordered bundle differs")
	}

	// The TLS certificate and the edge CA pool come from the bundle.
	tc := b.TLSCertificate()
	if len(tc.Certificate) != 1 || !bytes.Equal(tc.Certificate[0], b.Cert.Raw) || tc.Leaf != b.Cert || tc.PrivateKey != b.Key {
		t.Fatal("TLSCertificate does not hold the bundle's certificate and key")
	}
	pool, err := b.EdgeCAPool()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := f.edgeCA.IssueServer([]string{testServerName}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: testServerName}); err != nil {
		t.Fatal(err)
	}
}

// blockTypes returns the types of the PEM blocks of data, in order.
func blockTypes(data []byte) []string {
	var types []string
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return types
		}
		types = append(types, blk.Type)
	}
}

// splitBlocks returns the contents of the PEM blocks of data by type.
func splitBlocks(t testing.TB, data []byte) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return m
		}
		m[blk.Type] = blk.Bytes
	}
}

func TestParseBundleErrors(t *testing.T) {
	f := newFixture(t)
	blocks := splitBlocks(t, mustMarshal(t, f.bundle))
	cert := pemBlock("CERTIFICATE", blocks["CERTIFICATE"])
	key := pemBlock("PRIVATE KEY", blocks["PRIVATE KEY"])
	tok := pemBlock("CULVERT TUNNEL TOKEN", blocks["CULVERT TUNNEL TOKEN"])
	tokenWith := func(edit func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(blocks["CULVERT TUNNEL TOKEN"], &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return pemBlock("CULVERT TUNNEL TOKEN", j)
	}
	otherKey, _ := GenerateKey()
	otherKeyDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	srv, err := f.originCA.IssueServer([]string{"example.test", "*.example.test"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvKeyDER, _ := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	truncated := cat(cert, key, tok)
	truncated = truncated[:len(truncated)-len("-----END CULVERT TUNNEL TOKEN-----\n")]

	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty", nil, []string{"no PEM blocks"}},
		{"not PEM", []byte("hello"), []string{"no PEM blocks"}},
		{"missing certificate", cat(key, tok), []string{"missing CERTIFICATE block"}},
		{"missing key", cat(cert, tok), []string{"missing PRIVATE KEY block"}},
		{"missing token", cat(cert, key), []string{"missing CULVERT TUNNEL TOKEN block"}},
		{"duplicate certificate", cat(cert, key, tok, cert), []string{"duplicate CERTIFICATE block"}},
		{"duplicate key", cat(cert, key, key, tok), []string{"duplicate PRIVATE KEY block"}},
		{"duplicate token", cat(tok, cert, key, tok), []string{"duplicate CULVERT TUNNEL TOKEN block"}},
		{"unknown block type", cat(cert, key, tok, pemBlock("EC PRIVATE KEY", []byte{1})), []string{`unknown block type "EC PRIVATE KEY"`}},
		{"truncated block", truncated, []string{"malformed PEM block"}},
		{"PEM headers", cat(cert, []byte("-----BEGIN PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n"+string(key[len("-----BEGIN PRIVATE KEY-----\n"):])), tok), []string{"PRIVATE KEY block has PEM headers"}},
		{"certificate does not parse", cat(pemBlock("CERTIFICATE", []byte("junk")), key, tok), []string{"CERTIFICATE block"}},
		{"key does not parse", cat(cert, pemBlock("PRIVATE KEY", []byte("junk")), tok), []string{"PRIVATE KEY block"}},
		{"key does not match", cat(cert, pemBlock("PRIVATE KEY", otherKeyDER), tok), []string{"private key does not match the certificate"}},
		{"token JSON invalid", cat(cert, key, pemBlock("CULVERT TUNNEL TOKEN", []byte(`{"zone_id":`))), []string{"token JSON invalid"}},
		{"token not an object", cat(cert, key, pemBlock("CULVERT TUNNEL TOKEN", []byte(`[1]`))), []string{"token JSON invalid"}},
		{"token without zone_id", cat(cert, key, tokenWith(func(m map[string]any) { delete(m, "zone_id") })), []string{"token has no zone_id"}},
		{"token without api_token", cat(cert, key, tokenWith(func(m map[string]any) { m["api_token"] = "" })), []string{"token has no api_token"}},
		{"token without either", cat(cert, key, pemBlock("CULVERT TUNNEL TOKEN", []byte(`{}`))), []string{"token has no zone_id and api_token"}},
		{"token zone differs", cat(cert, key, tokenWith(func(m map[string]any) { m["zone"] = "other.test" })), []string{`token zone "other.test" is not the certificate's zone "example.test"`}},
		{"not an origin certificate", cat(pemBlock("CERTIFICATE", srv.Leaf.Raw), pemBlock("PRIVATE KEY", srvKeyDER), tok), []string{"not an origin certificate", "client-authentication"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBundle(tt.data)
			if b != nil {
				t.Fatal("got a bundle with an error")
			}
			wantErr(t, err, append([]string{"cert.pem: "}, tt.want...)...)
		})
	}

	// Marshal refuses what ParseBundle refuses.
	bad := *f.bundle
	bad.Token.APIToken = ""
	_, err = bad.Marshal()
	wantErr(t, err, "api_token")
	bad = *f.bundle
	bad.Key = otherKey
	_, err = bad.Marshal()
	wantErr(t, err, "does not match")
	_, err = (&Bundle{}).Marshal()
	wantErr(t, err, "no certificate")
}

func TestParseBundleFillsZone(t *testing.T) {
	f := newFixture(t)
	b := *f.bundle
	b.Token.Zone = ""
	b.Token.Edges = []string{}
	got, err := ParseBundle(mustMarshal(t, &b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Token.Zone != testZone || got.Token.Edges != nil {
		t.Fatalf("token %+v", got.Token)
	}
	b.Token.Zone = "EXAMPLE.test."
	got, err = ParseBundle(mustMarshal(t, &b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Token.Zone != testZone {
		t.Fatalf("zone %q", got.Token.Zone)
	}
}

func TestEdgeCAPoolErrors(t *testing.T) {
	for _, tt := range []struct{ ca, want string }{
		{"", "no edge_ca"},
		{"junk", "no PEM certificate"},
		{string(pemBlock("CERTIFICATE", []byte("junk"))), "edge_ca"},
		{string(pemBlock("PRIVATE KEY", []byte("junk"))), `unexpected "PRIVATE KEY" block`},
	} {
		_, err := (&Bundle{Token: Token{EdgeCA: tt.ca}}).EdgeCAPool()
		wantErr(t, err, tt.want)
	}
}

func TestWriteBundleFile(t *testing.T) {
	f := newFixture(t)
	data := mustMarshal(t, f.bundle)
	root := t.TempDir()
	path := filepath.Join(root, "culvert", "conf", "cert.pem")

	if err := WriteBundleFile(path, data, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Fatalf("file mode %v, want 0600", fi.Mode())
	}
	for _, d := range []string{filepath.Join(root, "culvert"), filepath.Join(root, "culvert", "conf")} {
		di, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o700 {
			t.Fatalf("%s mode %v, want 0700", d, di.Mode().Perm())
		}
	}
	b, err := ReadBundleFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Cert.Equal(f.bundle.Cert) {
		t.Fatal("read back a different certificate")
	}

	// Without force an existing file is left alone.
	err = WriteBundleFile(path, []byte("other"), false)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("got %v, want os.ErrExist", err)
	}
	wantErr(t, err, path, "use --force")
	assertContent(t, path, data)

	// With force it is replaced, still 0600.
	other := newFixture(t)
	data2 := mustMarshal(t, other.bundle)
	if err := WriteBundleFile(path, data2, true); err != nil {
		t.Fatal(err)
	}
	assertContent(t, path, data2)
	if fi, _ := os.Stat(path); fi.Mode() != 0o600 {
		t.Fatalf("file mode %v after overwrite", fi.Mode())
	}
	assertOnlyFile(t, filepath.Dir(path), "cert.pem")

	// A permissive umask does not widen the modes.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path2 := filepath.Join(root, "open", "cert.pem")
	if err := WriteBundleFile(path2, data, false); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path2); fi.Mode() != 0o600 {
		t.Fatalf("file mode %v with umask 0", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(path2)); di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v with umask 0", di.Mode().Perm())
	}
}

func TestWriteBundleFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cert.pem")
	old := []byte("old bundle\n")
	if err := WriteBundleFile(path, old, false); err != nil {
		t.Fatal(err)
	}

	// The disk fills up halfway through the new file.
	saved := writeAndSync
	t.Cleanup(func() { writeAndSync = saved })
	writeAndSync = func(f *os.File, data []byte) error {
		if _, err := f.Write(data[:len(data)/2]); err != nil {
			return err
		}
		return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	err := WriteBundleFile(path, bytes.Repeat([]byte("new bundle\n"), 100), true)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("got %v, want ENOSPC", err)
	}
	wantErr(t, err, path)
	assertContent(t, path, old)
	assertOnlyFile(t, dir, "cert.pem")
	writeAndSync = saved

	// The target is a directory: the rename fails, the directory stays.
	sub := filepath.Join(dir, "taken")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteBundleFile(sub, old, true); err == nil {
		t.Fatal("overwrote a directory")
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Fatalf("directory gone: %v", err)
	}
	if err := WriteBundleFile(sub, old, false); !errors.Is(err, os.ErrExist) {
		t.Fatalf("got %v, want os.ErrExist", err)
	}

	// The parent is a regular file.
	err = WriteBundleFile(filepath.Join(path, "cert.pem"), old, true)
	wantErr(t, err, path)
	assertContent(t, path, old)
	assertOnlyFile(t, dir, "cert.pem", "taken")
}

func TestReadBundleFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	_, err := ReadBundleFile(missing)
	wantErr(t, err, missing)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want fs.ErrNotExist", err)
	}
	broken := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(broken, []byte("not a bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadBundleFile(broken)
	wantErr(t, err, broken, "no PEM blocks")
}

func assertContent(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", path, truncate(got), truncate(want))
	}
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// assertOnlyFile fails if dir holds anything but names (no temp files left).
func assertOnlyFile(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

func FuzzParseBundle(f *testing.F) {
	fx := newFixture(f)
	data := mustMarshal(f, fx.bundle)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add(data[:len(data)-10])
	f.Add(bytes.ReplaceAll(data, []byte("CULVERT TUNNEL TOKEN"), []byte("TOKEN")))
	f.Add(bytes.Repeat(data, 2))
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	blocks := map[string][]byte{}
	for typ, der := range splitBlocks(f, data) {
		blocks[typ] = pemBlock(typ, der)
	}
	f.Add(bytes.Join([][]byte{blocks["CULVERT TUNNEL TOKEN"], blocks["CERTIFICATE"], blocks["PRIVATE KEY"]}, nil))
	f.Add(bytes.Join([][]byte{blocks["CERTIFICATE"], blocks["PRIVATE KEY"], pemBlock("CULVERT TUNNEL TOKEN", []byte(`{"zone_id":"z","api_token":"t","edges":[]}`))}, nil))
	f.Add(bytes.Join([][]byte{blocks["CERTIFICATE"], blocks["PRIVATE KEY"], pemBlock("CULVERT TUNNEL TOKEN", []byte(`{"zone_id":"z","api_token":"t","zone":"EXAMPLE.TEST."}`))}, nil))
	f.Add(bytes.Join([][]byte{blocks["CERTIFICATE"], blocks["PRIVATE KEY"], pemBlock("CULVERT TUNNEL TOKEN", []byte(`{"zone_id":"\xff","api_token":"t"}`))}, nil))

	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := ParseBundle(in)
		if err != nil {
			if b != nil {
				t.Fatal("bundle and error")
			}
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("parsed bundle does not marshal: %v", err)
		}
		b2, err := ParseBundle(out)
		if err != nil {
			t.Fatalf("re-marshalled bundle does not parse: %v", err)
		}
		if b2.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) != 0 || !b2.Cert.Equal(b.Cert) {
			t.Fatal("certificate changed")
		}
		if !publicKeysEqual(b2.Key.Public(), b.Key.Public()) {
			t.Fatal("key changed")
		}
		if !reflect.DeepEqual(b2.Token, b.Token) {
			t.Fatalf("token changed: %+v, then %+v", b.Token, b2.Token)
		}
	})
}
