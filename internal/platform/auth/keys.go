package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// KeyFile is the name of the signing key's file in the directory given
// to LoadOrCreateKey.
const KeyFile = "jwt-ed25519.pem"

// LoadOrCreateKey returns the Ed25519 private key stored in dir/KeyFile
// (PKCS #8, PEM), creating dir and the key (mode 0600) if there is none.
// Concurrent first starts agree on one key: the file appears atomically
// and the loser of the race loads the winner's key.
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create key directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("auth: encode key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".jwt-ed25519-*.pem") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("auth: write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("auth: write key: %w", err)
	}
	// Link fails if the file exists: another process created it first.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("auth: install key: %w", err)
	}
	syncDir(dir)
	return loadKey(path)
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		slog.Warn("auth: the JWT signing key is readable by other users", "path", path, "mode", fi.Mode().Perm().String())
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: %s holds no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("auth: %s holds a %T, not an Ed25519 key", path, k)
	}
	return priv, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// KeyID returns the key ID of pub: its RFC 7638 JWK thumbprint (SHA-256,
// base64url), so the same key always gets the same ID.
func KeyID(pub ed25519.PublicKey) string {
	// Members in lexicographic order, no whitespace (RFC 7638 §3.2).
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// KeySet is an immutable set of Ed25519 public keys by key ID.
type KeySet struct {
	ids  []string
	keys map[string]ed25519.PublicKey
}

// NewKeySet returns the set of keys, each under its KeyID.
func NewKeySet(keys ...ed25519.PublicKey) *KeySet {
	s := &KeySet{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for _, k := range keys {
		id := KeyID(k)
		if _, dup := s.keys[id]; !dup {
			s.ids = append(s.ids, id)
			s.keys[id] = k
		}
	}
	return s
}

// Key returns the key with ID kid.
func (s *KeySet) Key(kid string) (ed25519.PublicKey, bool) {
	k, ok := s.keys[kid]
	return k, ok
}

// JWK is one public key of a JWKS document (RFC 7517, RFC 8037).
type JWK struct {
	// Kty is the key type, "OKP".
	Kty string `json:"kty"`
	// Crv is the curve, "Ed25519".
	Crv string `json:"crv"`
	// X is the public key, base64url without padding.
	X string `json:"x"`
	// Kid is the key ID.
	Kid string `json:"kid"`
	// Alg is the algorithm the key is used with, "EdDSA".
	Alg string `json:"alg"`
	// Use is the key's use, "sig".
	Use string `json:"use"`
}

// JWKSet is a JWKS document.
type JWKSet struct {
	// Keys are the public keys.
	Keys []JWK `json:"keys"`
}

// JWKS returns the set as a JWKS JSON document.
func (s *KeySet) JWKS() ([]byte, error) {
	doc := JWKSet{Keys: make([]JWK, 0, len(s.ids))}
	for _, id := range s.ids {
		doc.Keys = append(doc.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.keys[id]),
			Kid: id, Alg: "EdDSA", Use: "sig"})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("auth: encode JWKS: %w", err)
	}
	return b, nil
}
