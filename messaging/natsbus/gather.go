package natsbus

import (
	"context"
	"fmt"
)

// Gather sends data to subject (in the bus's namespace) and hands the
// answer of every process that responds there (Respond with no queue:
// each of them answers) to each, until each returns true or ctx ends
// (after DefaultRequestTimeout if ctx has no deadline). Gather returns
// nil then: whoever answered in time did; it fails only if the request
// could not be sent.
func (b *Bus) Gather(ctx context.Context, subject string, data []byte, each func(answer []byte) (done bool)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	inbox := b.nc.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("natsbus: gather %s: %w", subject, err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // nothing to do about it
	if err := b.nc.PublishRequest(b.subject(subject), inbox, data); err != nil {
		return fmt.Errorf("natsbus: gather %s: %w", subject, err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("natsbus: gather %s: %w", subject, err)
		}
		if each(m.Data) {
			return nil
		}
	}
}
