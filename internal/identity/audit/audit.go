// Package audit is the identity context's audit log on the event store:
// each tenant's security-relevant actions are events in the stream
// "audit-<tenant>".
package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/identity"
)

// StreamPrefix starts the name of every audit stream.
const StreamPrefix = "audit-"

// Stream returns the name of tenant's audit stream.
func Stream(tenant string) string { return StreamPrefix + tenant }

// Anonymous is the user of an audit event refused to a caller nobody
// authenticated (a failed login).
const Anonymous = "anonymous"

// Log is an identity.Audit that appends to an event store.
type Log struct {
	store eventstore.Store
}

var _ identity.Audit = (*Log)(nil)

// New returns a Log on store.
func New(store eventstore.Store) *Log { return &Log{store: store} }

// Record appends e to tenant's audit stream, with the request's ID (from
// identity.OriginFrom(ctx)) as correlation ID, its trace context, and as
// user the authenticated caller or, when there is none (a login, a
// registration), who acted — Anonymous for a refusal, whose Who is only
// what the client typed.
func (l *Log) Record(ctx context.Context, tenant string, e identity.AuditEvent) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode %s: %w", e.Type, err)
	}
	o := identity.OriginFrom(ctx)
	user := o.Actor
	switch {
	case user != "":
	case e.Reason != "":
		user = Anonymous
	default:
		user = e.Who
	}
	_, err = l.store.Append(ctx, Stream(tenant), eventstore.Any, eventstore.EventData{
		Type: e.Type,
		Data: data,
		Metadata: eventstore.Metadata{
			Tenant:        tenant,
			CorrelationID: o.RequestID,
			User:          user,
			TraceParent:   o.TraceParent,
		},
	})
	if err != nil {
		return fmt.Errorf("audit: append %s: %w", e.Type, err)
	}
	return nil
}
