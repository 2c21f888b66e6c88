package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// ReadTimeout is how long a connection may wait for the server's next
// byte while the client waits for one: past it the connection is taken
// for dead and closed (the request fails; the pool dials afresh). A
// blackholed server or network — packets lost, nothing reset, which TCP
// alone notices only after many minutes — is then noticed within it.
// Agora's queries answer in milliseconds.
const ReadTimeout = 15 * time.Second

// dialer dials connections whose reads give up after ReadTimeout without
// a byte, composing with the deadlines pgx sets itself (to interrupt a
// read when a context ends): the earlier one wins.
func dialer(d *net.Dialer) pgconn.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &deadlineConn{Conn: c}, nil
	}
}

// deadlineConn is a net.Conn whose reads time out after ReadTimeout.
type deadlineConn struct {
	net.Conn
	mu   sync.Mutex
	user time.Time // the read deadline its user (pgx) set; zero: none
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	dl := time.Now().Add(ReadTimeout)
	if !c.user.IsZero() && c.user.Before(dl) {
		dl = c.user
	}
	err := c.Conn.SetReadDeadline(dl)
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user = t
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user = t
	return c.Conn.SetReadDeadline(t)
}

// guard makes cfg's connections notice a dead server (see ReadTimeout).
func guard(cfg *pgconn.Config) {
	cfg.DialFunc = dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second})
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
}

// OpenDB opens a database/sql handle on url with schema as its search
// path, whose connections notice a dead server as the store's do.
func OpenDB(url, schema string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(WithSearchPath(url, schema))
	if err != nil {
		return nil, fmt.Errorf("postgres: parse URL: %w", err)
	}
	guard(&cfg.Config)
	db := stdlib.OpenDB(*cfg)
	db.SetConnMaxIdleTime(30 * time.Second) // as the store's pool
	return db, nil
}
