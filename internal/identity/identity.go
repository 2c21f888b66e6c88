// Package identity is the identity bounded context's domain: tenants,
// users with roles, the rules a user must satisfy, password hashing, and
// the ports the context needs (its repository, the payments account
// opener and the audit log). It is plain Go: adapters live in
// sub-packages (store for SQL, audit for the event store, app for the use
// cases, api for HTTP).
package identity

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agora-commerce/agora/internal/platform/errs"
)

// DefaultTenant is the tenant requests use when they name none. It
// always exists (the store creates it).
const DefaultTenant = "demo"

// Limits of user fields.
const (
	// MinPasswordChars is the shortest password accepted, in characters.
	MinPasswordChars = 8
	// MaxPasswordBytes is the longest password accepted, in bytes.
	MaxPasswordBytes = 256
	// MaxEmailBytes is the longest email address accepted (RFC 5321).
	MaxEmailBytes = 254
	// MaxNameChars is the longest user name accepted, in characters.
	MaxNameChars = 200
)

// Role is what a user may do: customer, merchant or admin.
type Role string

// The roles.
const (
	// Customer buys, and owns its orders and payments accounts.
	Customer Role = "customer"
	// Merchant manages the catalog and stock.
	Merchant Role = "merchant"
	// Admin may do anything within its tenant.
	Admin Role = "admin"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == Customer || r == Merchant || r == Admin }

// ParseRoles checks names and returns them as a sorted set of roles
// (duplicates dropped). A user has at least one role.
func ParseRoles(names []string) ([]Role, error) {
	if len(names) == 0 {
		return nil, errs.Fields(errs.FieldError{Field: "roles", Message: "must name at least one role"})
	}
	roles := make([]Role, 0, len(names))
	for _, n := range names {
		r := Role(n)
		if !r.Valid() {
			return nil, errs.Fields(errs.FieldError{Field: "roles", Message: "must be customer, merchant or admin, not " + quote(n)})
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	slices.Sort(roles)
	return roles, nil
}

// RoleNames returns roles as strings.
func RoleNames(roles []Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = string(r)
	}
	return out
}

// Tenant is an isolated customer of the platform: users, orders and
// accounts of one tenant are never visible to another.
type Tenant struct {
	// ID is a lower-case slug, e.g. "demo".
	ID string
	// Name is a display name.
	Name string
	// CreatedAt is when the tenant was created.
	CreatedAt time.Time
}

var tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckTenantID reports whether id is a well-formed tenant ID: 1–63
// lower-case letters, digits or '-', starting with a letter or digit.
func CheckTenantID(id string) *errs.FieldError {
	if !tenantPattern.MatchString(id) {
		return &errs.FieldError{Field: "tenant", Message: "must be 1–63 lower-case letters, digits or '-', starting with a letter or digit"}
	}
	return nil
}

// User is a person or system that logs in.
type User struct {
	// ID is the user's unique ID (the token's subject).
	ID string
	// Tenant is the ID of the user's tenant.
	Tenant string
	// Email is the normalised (lower-case) email address, unique per tenant.
	Email string
	// Name is the display name.
	Name string
	// Roles is the sorted set of the user's roles.
	Roles []Role
	// PasswordHash is the PHC-format hash of the password.
	PasswordHash string
	// AccountID is the user's payments account, if one was opened.
	AccountID string
	// CreatedAt and UpdatedAt are when the user was created and last changed.
	CreatedAt, UpdatedAt time.Time
}

// HasRole reports whether u has role r.
func (u User) HasRole(r Role) bool { return slices.Contains(u.Roles, r) }

// NewUser is the input that creates a user, before its password is hashed.
type NewUser struct {
	// Tenant is the tenant to create the user in.
	Tenant string
	// Email is the email address; Validate normalises it.
	Email string
	// Password is the clear-text password; never stored or logged.
	Password string
	// Name is the display name.
	Name string
	// Roles are the user's roles.
	Roles []Role
}

// Validate normalises n.Email and checks every field, listing each
// offending one.
func (n *NewUser) Validate() error {
	var bad []errs.FieldError
	if fe := CheckTenantID(n.Tenant); fe != nil {
		bad = append(bad, *fe)
	}
	email, fe := NormalizeEmail(n.Email)
	if fe != nil {
		bad = append(bad, *fe)
	} else {
		n.Email = email
	}
	if fe := CheckPassword(n.Password); fe != nil {
		bad = append(bad, *fe)
	}
	if fe := checkName(n.Name); fe != nil {
		bad = append(bad, *fe)
	}
	if len(n.Roles) == 0 {
		bad = append(bad, errs.FieldError{Field: "roles", Message: "must name at least one role"})
	}
	for _, r := range n.Roles {
		if !r.Valid() {
			bad = append(bad, errs.FieldError{Field: "roles", Message: "must be customer, merchant or admin, not " + quote(string(r))})
			break
		}
	}
	if len(bad) > 0 {
		return errs.Fields(bad...)
	}
	return nil
}

// emailPattern is the WHATWG HTML "valid email address" grammar.
var emailPattern = regexp.MustCompile("^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")

// NormalizeEmail trims and lower-cases email and checks that it is a
// plain address (local@domain, no display name, ASCII).
func NormalizeEmail(email string) (string, *errs.FieldError) {
	e := strings.ToLower(strings.TrimSpace(email))
	local, _, _ := strings.Cut(e, "@")
	switch {
	case e == "":
		return "", &errs.FieldError{Field: "email", Message: "is required"}
	case len(e) > MaxEmailBytes || len(local) > 64:
		return "", &errs.FieldError{Field: "email", Message: "is too long"}
	case !emailPattern.MatchString(e):
		return "", &errs.FieldError{Field: "email", Message: "is not a valid email address"}
	}
	return e, nil
}

// CheckPassword checks a new password's length: at least
// MinPasswordChars characters and at most MaxPasswordBytes bytes.
func CheckPassword(pw string) *errs.FieldError {
	switch {
	case pw == "":
		return &errs.FieldError{Field: "password", Message: "is required"}
	case utf8.RuneCountInString(pw) < MinPasswordChars:
		return &errs.FieldError{Field: "password", Message: "must be at least 8 characters long"}
	case len(pw) > MaxPasswordBytes:
		return &errs.FieldError{Field: "password", Message: "must be at most 256 bytes long"}
	}
	return nil
}

func checkName(name string) *errs.FieldError {
	switch {
	case strings.TrimSpace(name) == "":
		return &errs.FieldError{Field: "name", Message: "is required"}
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return &errs.FieldError{Field: "name", Message: "must be text without control characters"}
	case utf8.RuneCountInString(name) > MaxNameChars:
		return &errs.FieldError{Field: "name", Message: "is longer than 200 characters"}
	}
	return nil
}

func quote(s string) string {
	if len(s) > 32 {
		s = s[:32] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// Errors of the identity context.
var (
	// ErrUserNotFound reports an unknown user ID or email.
	ErrUserNotFound = &errs.Error{Code: errs.NotFound, Reason: "user_not_found", Message: "no such user"}
	// ErrTenantNotFound reports an unknown tenant.
	ErrTenantNotFound = &errs.Error{Code: errs.NotFound, Reason: "tenant_not_found", Message: "no such tenant"}
	// ErrEmailTaken reports a second user with the same email in a tenant.
	ErrEmailTaken = errs.Rule("email_taken", "a user with this email already exists")
	// ErrBadCredentials is the one answer to a failed login, whether the
	// user is unknown or the password wrong.
	ErrBadCredentials = &errs.Error{Code: errs.Unauthenticated, Reason: "invalid_credentials", Message: "wrong email or password"}
)
