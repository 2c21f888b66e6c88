package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/internal/platform/tlsconf"
)

// What plain HTTP sent to the TLS port gets (Config.TLSPlain).
const (
	// PlainRedirect answers 308 Permanent Redirect to the same URL over
	// https (the method and body kept).
	PlainRedirect = "redirect"
	// PlainRefuse answers 400 application/problem+json, reason
	// "https_required", naming the https URL.
	PlainRefuse = "refuse"
)

// CheckTLS refuses a TLS configuration that cannot work — a certificate
// without its key or the other way round, both files and a self-signed
// certificate, an unknown TLSPlain — before anything is opened. Open
// calls it; so does the command line, to fail at once.
func CheckTLS(cfg Config) error {
	switch {
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return errors.New("server: --tls-cert and --tls-key go together: give both, or neither")
	case cfg.TLSSelfSigned && cfg.TLSCert != "":
		return errors.New("server: --tls-self-signed makes its own certificate: give it or --tls-cert and --tls-key, not both")
	case cfg.TLSPlain != "" && cfg.TLSPlain != PlainRedirect && cfg.TLSPlain != PlainRefuse:
		return fmt.Errorf("server: --tls-plain %q: want %q or %q", cfg.TLSPlain, PlainRedirect, PlainRefuse)
	}
	return nil
}

// TLS reports whether the server serves Addr over HTTPS.
func (cfg Config) TLS() bool { return cfg.TLSCert != "" || cfg.TLSSelfSigned }

// openTLS loads what the listener on Addr serves with (the certificate
// files, or the development certificate, made if missing) and what the
// calls to other processes trust (TLSCA).
func (s *Server) openTLS() error {
	cfg := s.cfg
	if cfg.TLSCA != "" {
		trust, err := tlsconf.Trust(cfg.TLSCA)
		if err != nil {
			return fmt.Errorf("server: --tls-ca: %w", err)
		}
		s.client = tlsconf.Client(trust, 64)
		s.clientTLS = trust
	}
	if !cfg.TLS() {
		return nil
	}
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if cfg.TLSSelfSigned {
		hosts := devHosts(cfg.Addr)
		var made bool
		var fp string
		var err error
		certFile, keyFile, made, fp, err = tlsconf.DevCertificate(devCertDir(cfg.DataDir), hosts)
		if err != nil {
			return fmt.Errorf("server: --tls-self-signed: %w", err)
		}
		if made {
			s.log.Warn("made a self-signed development certificate; browsers and clients will not trust it unless told to",
				"cert", certFile, "hosts", hosts, "sha256", fp)
		} else {
			s.log.Info("using the self-signed development certificate", "cert", certFile, "sha256", fp)
		}
	}
	conf, err := tlsconf.Server(certFile, keyFile)
	if err != nil {
		if cfg.TLSSelfSigned {
			return fmt.Errorf("server: --tls-self-signed: %w", err)
		}
		return fmt.Errorf("server: --tls-cert, --tls-key: %w", err)
	}
	s.tls = conf
	return nil
}

// devCertDir is where the development certificate is kept.
func devCertDir(dataDir string) string { return filepath.Join(dataDir, "tls") }

// DevCertFile returns the development certificate's file when the server
// serves with one (Config.TLSSelfSigned), for clients to trust; else "".
func (s *Server) DevCertFile() string {
	if !s.cfg.TLSSelfSigned {
		return ""
	}
	return filepath.Join(devCertDir(s.cfg.DataDir), "cert.pem")
}

// devHosts are the names a development certificate is valid for: the
// loopback names and addresses, and the host of addr (the machine's name
// when addr binds every interface).
func devHosts(addr string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return hosts
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		} else {
			return hosts
		}
	}
	for _, h := range hosts {
		if h == host {
			return hosts
		}
	}
	return append(hosts, host)
}

// listen binds Addr; with TLS, its connections are sorted by their first
// byte: TLS handshakes to the server, plain HTTP to s.plain.
func (s *Server) listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	s.ln = ln
	if s.tls != nil {
		s.split = tlsconf.NewSplit(ln, 0)
		plain := newHTTPServer(httpapi.AccessLog(s.log, s.plainHTTP()), s.log)
		// Keep-alive off: one answer, then the connection is closed.
		plain.SetKeepAlivesEnabled(false)
		s.plain = plain
	}
	return nil
}

// serve serves s.http on the listener — over TLS, beside the plain
// HTTP server, when TLS is on — sending what Serve returns to errc.
func (s *Server) serve(errc chan<- error) {
	if s.split == nil {
		go func() { errc <- s.http.Serve(s.ln) }()
		return
	}
	s.http.TLSConfig = s.tls
	go func() { errc <- s.http.ServeTLS(s.split.TLS(), "", "") }()
	go func() { errc <- s.plain.Serve(s.split.Plain()) }()
}

// plainHTTP answers plain HTTP sent to the TLS port: a 308 to the same
// URL over https, or (PlainRefuse) a 400 problem naming it.
func (s *Server) plainHTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if host == "" {
			host = s.Addr()
		}
		target := "https://" + host + r.URL.RequestURI()
		if s.cfg.TLSPlain == PlainRefuse {
			httpapi.Error(w, r, &errs.Error{Code: errs.Invalid, Reason: "https_required",
				Message: "this port speaks HTTPS only: send the request to " + target})
			return
		}
		http.Redirect(w, r, target, http.StatusPermanentRedirect)
	})
}

// URL returns the server's base URL: https:// or http:// and the bound
// address.
func (s *Server) URL() string {
	if s.tls != nil {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}
