package edge_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/gateway/edge"
)

// TestTooLargeReachesAClientThatKeepsSending: a client that sends a body
// over the limit without waiting for 100 Continue (Python's urllib, many
// SDKs) still reads the 413 problem — the rest of its body is read and
// dropped before the connection closes, not reset under it; one that
// asks first gets the 413 before it sends anything.
func TestTooLargeReachesAClientThatKeepsSending(t *testing.T) {
	reached := false
	srv := httptest.NewServer(edge.BodyLimit(1<<20, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true })))
	t.Cleanup(srv.Close)
	body := bytes.Repeat([]byte("x"), 2<<20)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			head := "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			if chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
			}
			// Small buffers and a steady pace: the body is still on its way
			// when the answer is written, as over a real network.
			_ = conn.(*net.TCPConn).SetWriteBuffer(32 << 10)
			// The client writes everything, then reads, as urllib does: a
			// reset while it writes is an error it reports, answer or not.
			w := bufio.NewWriterSize(&paced{conn}, 16<<10)
			w.WriteString(head)
			if chunked {
				for off := 0; off < len(body); off += 64 << 10 {
					fmt.Fprintf(w, "%x\r\n", 64<<10)
					w.Write(body[off : off+64<<10])
					w.WriteString("\r\n")
				}
				w.WriteString("0\r\n\r\n")
			} else {
				w.Write(body)
			}
			if err := w.Flush(); err != nil {
				t.Fatalf("the connection failed while the client sent its body: %v", err)
			}
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("answer %d %s, want a 413 problem", res.StatusCode, res.Header.Get("Content-Type"))
			}
		})
	}
	t.Run("expect 100-continue", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil) // before sending any of the body
		if err != nil || res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%v %v, want 413 before the body", res, err)
		}
	})
	if reached {
		t.Error("the handler was reached")
	}
}

// paced writes with a pause after each write, like a client on a slower
// link than loopback: 2 MiB take about 0.7 s, longer than the half second
// net/http waits after its answer before it closes.
type paced struct{ c net.Conn }

func (p *paced) Write(b []byte) (int, error) {
	n, err := p.c.Write(b)
	time.Sleep(5 * time.Millisecond)
	return n, err
}
