package tlsconf

import (
	"errors"
	"net"
	"sync"
	"time"
)

// handshake is the first byte of every TLS connection: a record of
// content type 22, handshake (the ClientHello).
const handshake = 0x16

// Split sorts the connections a listener accepts by their first byte: a
// TLS handshake to TLS(), anything else (plain HTTP sent to the TLS
// port) to Plain(), each a listener of its own for its own http.Server.
// A connection that sends nothing within the timeout is closed. Closing
// either listener closes the one underneath, and both.
type Split struct {
	ln      net.Listener
	timeout time.Duration
	tls     chan net.Conn
	plain   chan net.Conn
	done    chan struct{}
	once    sync.Once
}

// NewSplit starts sorting the connections ln accepts; timeout bounds the
// wait for each one's first byte (default 10s).
func NewSplit(ln net.Listener, timeout time.Duration) *Split {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	s := &Split{ln: ln, timeout: timeout, tls: make(chan net.Conn), plain: make(chan net.Conn), done: make(chan struct{})}
	go s.accept()
	return s
}

// TLS is the listener of the connections that start a TLS handshake
// (still to be made: wrap it with tls.NewListener, or http.Server.ServeTLS).
func (s *Split) TLS() net.Listener { return &half{s, s.tls} }

// Plain is the listener of the connections that start with anything else.
func (s *Split) Plain() net.Listener { return &half{s, s.plain} }

// Close closes the listener underneath; both halves' Accept return
// net.ErrClosed. Closing again does nothing (two servers shut down).
func (s *Split) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ln.Close()
	})
	return err
}

func (s *Split) accept() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				s.Close()
				return
			}
			// Out of file descriptors and the like: wait, as http.Server does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
				continue
			case <-s.done:
				return
			}
		}
		delay = 0
		go s.sort(c)
	}
}

// sort reads c's first byte and hands c, with the byte put back, to the
// half it belongs to.
func (s *Split) sort(c net.Conn) {
	var b [1]byte
	_ = c.SetReadDeadline(time.Now().Add(s.timeout))
	n, err := c.Read(b[:])
	for n == 0 && err == nil {
		n, err = c.Read(b[:])
	}
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	to := s.plain
	if b[0] == handshake {
		to = s.tls
	}
	select {
	case to <- &peeked{Conn: c, first: b[0], has: true}:
	case <-s.done:
		c.Close()
	}
}

// half is one of a Split's two listeners.
type half struct {
	s     *Split
	conns chan net.Conn
}

func (h *half) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.s.done:
		return nil, net.ErrClosed
	}
}

func (h *half) Close() error   { return h.s.Close() }
func (h *half) Addr() net.Addr { return h.s.ln.Addr() }

// peeked is a connection whose first byte was read, and is read again.
type peeked struct {
	net.Conn
	first byte
	has   bool
}

func (p *peeked) Read(b []byte) (int, error) {
	if p.has && len(b) > 0 {
		b[0], p.has = p.first, false
		return 1, nil
	}
	return p.Conn.Read(b)
}
