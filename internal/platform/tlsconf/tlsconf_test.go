package tlsconf_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/platform/tlsconf"
)

// TestDevCertificate makes a development certificate once, reuses it for
// the same hosts, and makes another when a host is new to it.
func TestDevCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	certFile, keyFile, made, fp, err := tlsconf.DevCertificate(dir, []string{"localhost", "127.0.0.1", "::1"})
	if err != nil || !made || fp == "" {
		t.Fatalf("first: %v made=%v fp=%q", err, made, fp)
	}
	first, _ := os.ReadFile(certFile)
	block, _ := pem.Decode(first)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if _, _, made, fp2, err := tlsconf.DevCertificate(dir, []string{"localhost"}); err != nil || made || fp2 != fp {
		t.Fatalf("second: %v made=%v", err, made)
	}
	if again, _ := os.ReadFile(certFile); !bytes.Equal(again, first) {
		t.Fatal("reused certificate changed")
	}
	if _, _, made, _, err := tlsconf.DevCertificate(dir, []string{"localhost", "agora.internal"}); err != nil || !made {
		t.Fatalf("a new host: %v made=%v, want a new certificate", err, made)
	}
}

// TestSplit hands TLS handshakes and plain bytes to their own listeners,
// the first byte intact, and closes a connection that sends nothing.
func TestSplit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := tlsconf.NewSplit(ln, 200*time.Millisecond)
	defer s.Close()
	send := func(b []byte) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if len(b) > 0 {
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	read := func(l net.Listener, n int) []byte {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := make([]byte, n)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	silent := send(nil)
	send([]byte{0x16, 3, 1})
	if got := read(s.TLS(), 3); !bytes.Equal(got, []byte{0x16, 3, 1}) {
		t.Fatalf("TLS half read %x", got)
	}
	send([]byte("GET / HTTP/1.1\r\n"))
	if got := read(s.Plain(), 4); string(got) != "GET " {
		t.Fatalf("plain half read %q", got)
	}
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("a silent connection: %v, want it closed", err)
	}
	if err := s.TLS().Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Plain().Close(); err != nil {
		t.Fatalf("closing again: %v", err)
	}
	if _, err := s.Plain().Accept(); err != net.ErrClosed {
		t.Fatalf("accept after close: %v", err)
	}
}
