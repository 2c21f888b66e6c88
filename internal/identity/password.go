package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are the salt and hash lengths in bytes.
	SaltLen, KeyLen uint32
}

// DefaultParams cost about 15–25 ms and 19 MiB per hash on a small
// server core: OWASP's memory floor for argon2id with one pass, a
// trade-off that keeps logins cheap enough to serve while making offline
// guessing expensive.
var DefaultParams = Params{Memory: 19 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds a stored hash's parameters must respect, so that a corrupt or
// hostile row cannot make a login allocate gigabytes.
const (
	maxMemory  = 256 * 1024
	maxTime    = 16
	maxThreads = 16
)

// ErrBadHash reports a stored password hash that is not a well-formed
// argon2id PHC string.
var ErrBadHash = errors.New("identity: malformed password hash")

// Hasher hashes and verifies passwords with argon2id, encoding hashes in
// the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
// It bounds how many hashes run at once (each takes Params.Memory), so a
// burst of logins queues instead of exhausting memory.
type Hasher struct {
	p     Params
	slots chan struct{}
	dummy []byte
}

// NewHasher returns a Hasher with p (DefaultParams if zero) running at
// most GOMAXPROCS hashes at once.
func NewHasher(p Params) *Hasher {
	if p == (Params{}) {
		p = DefaultParams
	}
	return &Hasher{p: p, slots: make(chan struct{}, runtime.GOMAXPROCS(0)), dummy: make([]byte, p.SaltLen)}
}

func (h *Hasher) key(ctx context.Context, pw string, salt []byte, p Params) ([]byte, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("identity: waiting to hash: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen), nil
}

// Hash returns the PHC-format argon2id hash of pw with a random salt.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, h.p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("identity: salt: %w", err)
	}
	k, err := h.key(ctx, pw, salt, h.p)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.p.Memory, h.p.Time, h.p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(k)), nil
}

// Verify reports whether pw matches encoded, comparing in constant time.
// A malformed encoded returns ErrBadHash.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	got, err := h.key(ctx, pw, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyNothing spends the time and memory of a Verify without a stored
// hash, so that a login for an unknown user costs as much as one with a
// wrong password.
func (h *Hasher) VerifyNothing(ctx context.Context, pw string) {
	_, _ = h.key(ctx, pw, h.dummy, h.p)
}

func parsePHC(s string) (Params, []byte, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Params{}, nil, nil, fmt.Errorf("%w: version %q", ErrBadHash, parts[2])
	}
	var p Params
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || n != 3 ||
		fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads) != parts[3] ||
		p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory || p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Threads > maxThreads {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters %q", ErrBadHash, parts[3])
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return Params{}, nil, nil, fmt.Errorf("%w: salt", ErrBadHash)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return Params{}, nil, nil, fmt.Errorf("%w: hash", ErrBadHash)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
