// Package server assembles Agora's embedded platform: the SQLite event
// store, the read-model database, the projections, the bounded contexts'
// HTTP APIs and the operational endpoints, served on one listener.
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/agora-commerce/agora/eventstore/sqlite"
	"github.com/agora-commerce/agora/internal/payments/api"
	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/telemetry"
	"github.com/agora-commerce/agora/projection"
)

// Config configures a Server.
type Config struct {
	// Addr is the listen address, e.g. "127.0.0.1:8080" or ":0".
	Addr string
	// DataDir holds the SQLite files; created if missing.
	DataDir string
	// Logger receives the server's logs.
	Logger *slog.Logger
}

// Server is the running embedded platform.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *sqlite.Store
	rmDB    *sql.DB
	runners []*projection.Runner
	metrics *telemetry.Metrics
	ln      net.Listener
	http    *http.Server

	wg     sync.WaitGroup
	cancel context.CancelFunc
	ready  chan struct{}
}

// Open opens the stores, applies migrations, builds the HTTP handler and
// binds the listener. Run serves.
func Open(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("server: data dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: telemetry.New(), ready: make(chan struct{})}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.store, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "events.db"), sqlite.Options{Observer: s.metrics.Store("sqlite")})
	if err != nil {
		return nil, err
	}
	s.rmDB, err = sql.Open("sqlite", sqlite.DSN(filepath.Join(cfg.DataDir, "readmodels.db"), false))
	if err != nil {
		return nil, err
	}
	s.rmDB.SetMaxOpenConns(8)

	accounts := projection.NewRunner(s.store, s.rmDB, readmodel.Projection{}, projection.Options{Logger: s.log})
	if err := accounts.Init(ctx); err != nil {
		return nil, err
	}
	s.runners = append(s.runners, accounts)
	s.metrics.Projection(accounts)

	mux := http.NewServeMux()
	api.New(app.NewService(s.store), readmodel.NewQueries(s.rmDB), accounts, s.store).Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpapi.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.Handler())

	s.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen: %w", err)
	}
	s.http = &http.Server{
		Handler:           httpapi.Middleware(s.log, s.metrics.HTTP(problemRoutes(mux))),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Addr returns the bound listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Ready is closed once the server accepts requests.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run starts the projections and serves HTTP until ctx ends, then shuts
// down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, r := range s.runners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("projection stopped", "projection", r.Name(), "err", err)
			}
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	close(s.ready)
	s.log.Info("agora serving", "addr", "http://"+s.Addr(), "data_dir", s.cfg.DataDir)
	select {
	case err := <-errc:
		s.cancel()
		s.wg.Wait()
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(shutdown)
	s.wg.Wait()
	return err
}

// Close releases the stores. Call it after Run returns.
func (s *Server) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	var errList []error
	if s.ln != nil {
		s.ln.Close()
	}
	if s.rmDB != nil {
		errList = append(errList, s.rmDB.Close())
	}
	if s.store != nil {
		errList = append(errList, s.store.Close())
	}
	return errors.Join(errList...)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"eventstore": "ok", "readmodels": "ok"}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		checks["eventstore"], status = err.Error(), http.StatusServiceUnavailable
	}
	if err := s.rmDB.PingContext(ctx); err != nil {
		checks["readmodels"], status = err.Error(), http.StatusServiceUnavailable
	}
	httpapi.JSON(w, status, map[string]any{"status": http.StatusText(status), "checks": checks})
}

// problemRoutes answers requests no route matches (404, or 405 with
// Allow) with problem+json instead of ServeMux's plain text.
func problemRoutes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			httpapi.Error(w, r, &errs.Error{Code: errs.MethodNotAllowed, Message: fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)})
		case http.StatusNotFound:
			httpapi.NotFound(w, r)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
