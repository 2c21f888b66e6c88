package saga

import (
	"context"

	"github.com/agora-commerce/agora/eventstore"
)

type metadataKey struct{}

// WithMetadata returns ctx carrying m, the metadata of the request on
// whose behalf the engine is called: Start records it as the instance's
// (its tenant, user, correlation and trace context), and Retry and Abort
// record it with their events. Every other event of the instance carries
// the instance's metadata, and its actions and compensations find it in
// their context (MetadataFrom), to pass on to what they write.
func WithMetadata(ctx context.Context, m eventstore.Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, m)
}

// MetadataFrom returns the metadata ctx carries (see WithMetadata), and
// whether it carries any.
func MetadataFrom(ctx context.Context) (eventstore.Metadata, bool) {
	m, ok := ctx.Value(metadataKey{}).(eventstore.Metadata)
	return m, ok
}
