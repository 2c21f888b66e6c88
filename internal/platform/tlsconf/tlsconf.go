// Package tlsconf is Agora's TLS: the server's configuration (a
// certificate and key from files, or a development certificate made once
// and kept), a listener that tells TLS from plain HTTP on one port, and
// the trust of the clients that call other processes (a CA bundle).
// Everything is the standard library's crypto/tls and crypto/x509.
package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// MinVersion is the oldest TLS version a server accepts: TLS 1.2.
const MinVersion = tls.VersionTLS12

// Server returns a server configuration with the certificate chain and
// key in the PEM files certFile and keyFile: TLS 1.2 at least, HTTP/2
// offered before HTTP/1.1 (ALPN).
func Server(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// Trust returns a client configuration that trusts the system's roots
// and the certificates in the PEM bundle caFile (TLS 1.2 at least); with
// caFile empty, the system's roots alone (nil: Go's default).
func Trust(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: CA bundle: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots on this machine: the bundle alone
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA bundle %s holds no PEM certificate", caFile)
	}
	return &tls.Config{MinVersion: MinVersion, RootCAs: pool}, nil
}

// Client returns an HTTP client for calls to other processes whose
// transport trusts what cfg trusts (nil: the system's roots), keeping
// up to idlePerHost connections to each peer alive (HTTP/1.1, as
// without TLS: a pool per peer rather than one multiplexed connection).
// It has no overall timeout: callers bound their requests with contexts.
func Client(cfg *tls.Config, idlePerHost int) *http.Client {
	if cfg == nil {
		cfg = &tls.Config{MinVersion: MinVersion}
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       cfg.Clone(),
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   idlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// DevCertificate returns the files of a self-signed development
// certificate in dir (cert.pem, and key.pem readable by the owner
// alone) valid for hosts (names and IP addresses). The first call makes
// them — an ECDSA P-256 key, a certificate valid for a year — and later
// calls reuse them, unless they no longer load, expire within a day or
// miss one of hosts: then they are made again. made says whether they
// were; fingerprint is the certificate's SHA-256, for the log.
func DevCertificate(dir string, hosts []string) (certFile, keyFile string, made bool, fingerprint string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if fp, ok := reusable(certFile, keyFile, hosts); ok {
		return certFile, keyFile, false, fp, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, "", fmt.Errorf("tls: development certificate: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(hosts, time.Now())
	if err != nil {
		return "", "", false, "", fmt.Errorf("tls: development certificate: %w", err)
	}
	// The key first: a crash between the two leaves a certificate that
	// does not match it, which the next start makes again.
	if err := writeFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", false, "", err
	}
	if err := writeFile(certFile, certPEM, 0o644); err != nil {
		return "", "", false, "", err
	}
	block, _ := pem.Decode(certPEM)
	return certFile, keyFile, true, fingerprintOf(block.Bytes), nil
}

// reusable says whether the certificate and key in the files load, match,
// stay valid for at least a day and cover every host.
func reusable(certFile, keyFile string, hosts []string) (fingerprint string, ok bool) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || len(pair.Certificate) == 0 {
		return "", false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Now().Add(24*time.Hour).After(leaf.NotAfter) || time.Now().Before(leaf.NotBefore) {
		return "", false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return "", false
		}
	}
	return fingerprintOf(leaf.Raw), true
}

// selfSigned makes a key and a certificate for hosts, both PEM.
func selfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Agora development"}, CommonName: "agora development certificate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}

// writeFile writes data to name through a temporary file renamed over
// it, so a reader never sees half a file.
func writeFile(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	_ = os.Remove(tmp) // left by a crash, perhaps with other permissions
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("tls: development certificate: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return errors.Join(fmt.Errorf("tls: development certificate: %w", err), os.Remove(tmp))
	}
	return nil
}

func fingerprintOf(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
