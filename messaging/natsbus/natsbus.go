// Package natsbus is Agora's message bus on NATS JetStream: a
// messaging.Publisher and messaging.Subscriber, embedded or external.
//
// Embedded (Options.URL empty), Open starts a NATS server inside the
// process with no TCP listener (server.Options.DontListen) and connects to
// it in-process; JetStream keeps its files under Options.DataDir. External
// (Options.URL set, e.g. from AGORA_NATS_URL), Open connects to that
// server or cluster. Nothing above the bus can tell the difference.
//
// Publishing sets each message's ID as Nats-Msg-Id, so the broker drops a
// message published again within the stream's duplicate window. JetStream
// writes to disk lazily by default: a message the broker acknowledged can
// be lost if the broker's host crashes before its next sync. Tail lets a
// messaging.Relay find the last position the broker really holds, and
// OnReconnect tells it when to look again, so such a lost tail is
// published again.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/agora-commerce/agora/messaging"
)

// Options configure a Bus.
type Options struct {
	// URL of an external NATS server; empty starts an embedded one.
	URL string
	// DataDir holds the embedded server's JetStream files.
	DataDir string
	// SyncAlways makes the embedded server fsync every write (slower; a
	// Relay with a Tail does not need it).
	SyncAlways bool
	// Namespace prefixes every subject ("<ns>.") and stream name
	// ("<NS>_"), so that several Agoras (or tests) can share a server.
	// Default "agora".
	Namespace string
	// Duplicates is the streams' de-duplication window (default 30s):
	// the broker remembers every message ID published in it (about 100
	// bytes of its heap each, with pointers the collector scans), so its
	// memory is the publish rate times the window — 36 MB at 3,000
	// messages a second over JetStream's own default of 2 minutes. A
	// relay publishes again only what follows its checkpoint, which
	// trails its acks by a batch, within seconds of restarting; inboxes
	// drop a duplicate that comes after the window.
	Duplicates time.Duration
	// Logger receives connection events (default slog.Default()).
	Logger *slog.Logger
	// OnDead, if set, is given every delivery whose handler failed
	// permanently (messaging.ErrPermanent) before the message is dropped,
	// with the name of the consumer that failed (the Consumer's Name, also
	// for a consumer of several subjects) and the handler's error: a dead
	// letter to keep. If it fails, the message is not dropped but
	// delivered again later, so that no dead letter is lost.
	OnDead func(ctx context.Context, consumer string, d messaging.Delivery, err error) error
}

// Bus is a connection to JetStream, and the embedded server if it runs one.
type Bus struct {
	opts Options
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream

	mu          sync.Mutex
	onReconnect []func()
}

var (
	_ messaging.Publisher  = (*Bus)(nil)
	_ messaging.Subscriber = (*Bus)(nil)
)

// Open starts or connects to the broker.
func Open(ctx context.Context, opts Options) (*Bus, error) {
	if opts.Namespace == "" {
		opts.Namespace = "agora"
	}
	if opts.Duplicates <= 0 {
		opts.Duplicates = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Bus{opts: opts}
	connOpts := []nats.Option{
		nats.Name("agora"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				opts.Logger.Warn("nats: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			opts.Logger.Info("nats: reconnected")
			b.reconnected()
		}),
	}
	url := opts.URL
	if url == "" {
		if opts.DataDir == "" {
			return nil, errors.New("natsbus: an embedded server needs a data directory")
		}
		srv, err := server.NewServer(&server.Options{
			ServerName: "agora-embedded",
			DontListen: true,
			JetStream:  true,
			StoreDir:   opts.DataDir,
			SyncAlways: opts.SyncAlways,
			NoSigs:     true,
			NoLog:      true,
		})
		if err != nil {
			return nil, fmt.Errorf("natsbus: embedded server: %w", err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			srv.Shutdown()
			return nil, errors.New("natsbus: embedded server did not start")
		}
		b.srv = srv
		connOpts = append(connOpts, nats.InProcessServer(srv))
	}
	nc, err := nats.Connect(url, connOpts...)
	if err != nil {
		b.shutdown()
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	b.nc = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	b.js = js
	return b, nil
}

func (b *Bus) shutdown() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// JetStream returns the bus's JetStream context, for other JetStream
// features on the same connection (the gateway's registry bucket, say).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Close closes the connection and stops the embedded server.
func (b *Bus) Close() error {
	if b.nc != nil {
		_ = b.nc.Drain()
		b.nc.Close()
	}
	b.shutdown()
	return nil
}

// OnReconnect registers f to run after every reconnection to the broker
// (which may have restarted and lost a lazily-synced tail).
func (b *Bus) OnReconnect(f func()) {
	b.mu.Lock()
	b.onReconnect = append(b.onReconnect, f)
	b.mu.Unlock()
}

func (b *Bus) reconnected() {
	b.mu.Lock()
	fs := append([]func(){}, b.onReconnect...)
	b.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Ping checks the connection.
func (b *Bus) Ping(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return errors.New("natsbus: not connected")
	}
	_, err := b.js.AccountInfo(ctx)
	return err
}

// Stream returns the full name of stream name in the bus's namespace.
func (b *Bus) Stream(name string) string {
	return strings.ToUpper(b.opts.Namespace) + "_" + strings.ToUpper(name)
}

func (b *Bus) subject(s string) string { return b.opts.Namespace + "." + s }

// EnsureStream creates or updates stream name (a log kept by limits,
// on disk, with the bus's duplicate window) holding subjects.
func (b *Bus) EnsureStream(ctx context.Context, name string, subjects ...string) error {
	full := make([]string, len(subjects))
	for i, s := range subjects {
		full[i] = b.subject(s)
	}
	cfg := jetstream.StreamConfig{
		Name:       b.Stream(name),
		Subjects:   full,
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Duplicates: b.opts.Duplicates,
		MaxAge:     7 * 24 * time.Hour,
	}
	// A stream deleted a moment ago may still be leaving the disk; the
	// server then refuses to create its store (10049) for a short while.
	wait := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := b.js.CreateOrUpdateStream(ctx, cfg)
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if attempt >= 8 || !errors.As(err, &apiErr) || apiErr.ErrorCode != errStreamStoreFailed {
			return fmt.Errorf("natsbus: stream %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsbus: stream %s: %w", name, err)
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// Publish implements messaging.Publisher: it sends every message at once
// and waits for all the broker's acknowledgements.
func (b *Bus) Publish(ctx context.Context, msgs ...messaging.Message) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var firstErr error
	for _, m := range msgs {
		nm := nats.NewMsg(b.subject(m.Subject))
		nm.Data = m.Data
		for k, v := range m.Headers {
			nm.Header.Set(k, v)
		}
		if m.Type != "" {
			nm.Header.Set(messaging.HeaderType, m.Type)
		}
		f, err := b.js.PublishMsgAsync(nm, jetstream.WithMsgID(m.ID))
		if err != nil {
			firstErr = fmt.Errorf("natsbus: publish %s: %w", m.Subject, err)
			break
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if firstErr == nil {
				firstErr = fmt.Errorf("natsbus: publish %s: %w", f.Msg().Subject, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return firstErr
}

// Tail returns a messaging.Tail for a relay that alone publishes to
// stream: the position header of the stream's last message.
func (b *Bus) Tail(stream string) messaging.Tail {
	return func(ctx context.Context) (uint64, bool, error) {
		s, err := b.js.Stream(ctx, b.Stream(stream))
		if err != nil {
			return 0, false, fmt.Errorf("natsbus: tail %s: %w", stream, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("natsbus: tail %s: %w", stream, err)
		}
		st := info.State
		if st.LastSeq == 0 {
			return 0, true, nil // nothing was ever stored (or all of it was lost)
		}
		if st.Msgs == 0 {
			return 0, false, nil // aged out: the broker cannot tell
		}
		m, err := s.GetMsg(ctx, st.LastSeq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("natsbus: tail %s: %w", stream, err)
		}
		pos, err := strconv.ParseUint(m.Header.Get(messaging.HeaderPosition), 10, 64)
		if err != nil {
			return 0, false, nil
		}
		return pos, true, nil
	}
}

// Repair makes consumer c consistent with its stream after a crash of a
// broker that fsyncs lazily: the broker may come back having lost the
// stream's newest messages but kept a consumer position past them, and
// would then skip the messages the relays publish again. A consumer found
// ahead of its stream is recreated to start right after the stream's last
// message (everything before it was acknowledged). Call Repair for every
// consumer before the relays start publishing.
func (b *Bus) Repair(ctx context.Context, c messaging.Consumer) error {
	if len(c.Subjects) > 1 {
		for i, subj := range c.Subjects {
			one := c
			one.Name, one.Subjects = fmt.Sprintf("%s-%d", c.Name, i), []string{subj}
			if err := b.Repair(ctx, one); err != nil {
				return err
			}
		}
		return nil
	}
	stream, err := b.js.Stream(ctx, b.Stream(c.Stream))
	if err != nil {
		return fmt.Errorf("natsbus: repair %s: %w", c.Name, err)
	}
	sinfo, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("natsbus: repair %s: %w", c.Name, err)
	}
	cons, err := stream.Consumer(ctx, c.Name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("natsbus: repair %s: %w", c.Name, err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("natsbus: repair %s: %w", c.Name, err)
	}
	last := sinfo.State.LastSeq
	if ci.AckFloor.Stream <= last && ci.Delivered.Stream <= last {
		return nil
	}
	b.opts.Logger.Warn("natsbus: consumer is ahead of its stream (the broker lost messages); restarting it after the stream's end",
		"consumer", c.Name, "ack_floor", ci.AckFloor.Stream, "stream_last", last)
	cfg := ci.Config
	if err := stream.DeleteConsumer(ctx, c.Name); err != nil {
		return fmt.Errorf("natsbus: repair %s: %w", c.Name, err)
	}
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	if _, err := stream.CreateOrUpdateConsumer(ctx, cfg); err != nil {
		return fmt.Errorf("natsbus: repair %s: %w", c.Name, err)
	}
	return nil
}

// Subscribe implements messaging.Subscriber with a durable pull consumer
// and explicit acknowledgements. It returns when ctx ends.
//
// A consumer of several subjects runs as one durable consumer per subject
// (named Name + "-" + its index), so that it works on servers older than
// 2.10, which allow one filter per consumer. Deliveries of different
// subjects are then not ordered among themselves.
func (b *Bus) Subscribe(ctx context.Context, c messaging.Consumer, h messaging.Handler) error {
	return b.subscribe(ctx, c, c.Name, h)
}

// subscribe is Subscribe, naming consumer owner in dead letters.
func (b *Bus) subscribe(ctx context.Context, c messaging.Consumer, owner string, h messaging.Handler) error {
	if len(c.Subjects) > 1 {
		var wg sync.WaitGroup
		errs := make([]error, len(c.Subjects))
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for i, subj := range c.Subjects {
			one := c
			one.Name, one.Subjects = fmt.Sprintf("%s-%d", c.Name, i), []string{subj}
			wg.Go(func() {
				errs[i] = b.subscribe(ctx, one, owner, h)
				cancel() // one failing stops the others: the caller retries the whole
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
		return ctx.Err()
	}
	filters := make([]string, len(c.Subjects))
	for i, s := range c.Subjects {
		filters[i] = b.subject(s)
	}
	ackWait := c.AckWait
	if ackWait <= 0 {
		ackWait = 30 * time.Second
	}
	conc := max(c.Concurrency, 1)
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    c.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: max(1000, 4*conc),
	}
	if c.InFlight > 0 {
		cfg.MaxAckPending = c.InFlight
	}
	if len(filters) == 1 {
		cfg.FilterSubject = filters[0]
	} else if len(filters) > 1 {
		cfg.FilterSubjects = filters
	}
	var cons jetstream.Consumer
	var err error
	if c.Ephemeral {
		cfg.Durable, cfg.Name = "", c.Name+"-"+nuid.Next()
		cfg.DeliverPolicy, cfg.InactiveThreshold = jetstream.DeliverNewPolicy, 30*time.Second
		cons, err = b.js.CreateConsumer(ctx, b.Stream(c.Stream), cfg)
	} else {
		cons, err = b.js.Consumer(ctx, b.Stream(c.Stream), c.Name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = b.js.CreateOrUpdateConsumer(ctx, b.Stream(c.Stream), cfg)
		}
	}
	if err != nil {
		return fmt.Errorf("natsbus: consumer %s: %w", c.Name, err)
	}
	prefix := b.opts.Namespace + "."
	work := make(chan jetstream.Msg, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for m := range work {
				b.handle(ctx, owner, prefix, m, h)
			}
		})
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case work <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(max(64, 2*conc)), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil {
			b.opts.Logger.Debug("natsbus: consume", "consumer", c.Name, "err", err)
		}
	}))
	if err != nil {
		close(work)
		wg.Wait()
		return fmt.Errorf("natsbus: consume %s: %w", c.Name, err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	close(work)
	wg.Wait()
	return ctx.Err()
}

func (b *Bus) handle(ctx context.Context, consumer, prefix string, m jetstream.Msg, h messaging.Handler) {
	d := messaging.Delivery{Message: messaging.Message{
		ID:      m.Headers().Get(nats.MsgIdHdr),
		Subject: strings.TrimPrefix(m.Subject(), prefix),
		Type:    m.Headers().Get(messaging.HeaderType),
		Data:    m.Data(),
		Headers: make(map[string]string, len(m.Headers())),
	}, Attempt: 1}
	for k := range m.Headers() {
		d.Headers[k] = m.Headers().Get(k)
	}
	if md, err := m.Metadata(); err == nil {
		d.Attempt = int(md.NumDelivered)
	}
	ctx, span := consumeSpan(ctx, consumer, &d)
	err := h(ctx, d)
	endConsume(span, err)
	switch {
	case err == nil:
		_ = m.Ack()
	case errors.Is(err, messaging.ErrPermanent):
		if b.opts.OnDead != nil {
			if derr := b.opts.OnDead(ctx, consumer, d, err); derr != nil {
				b.opts.Logger.ErrorContext(ctx, "natsbus: could not keep a dead letter; redelivering", "consumer", consumer, "id", d.ID, "err", err, "dead_letter_err", derr)
				_ = m.NakWithDelay(5 * time.Second)
				return
			}
		}
		b.opts.Logger.ErrorContext(ctx, "natsbus: dropping a message no retry can handle", "consumer", consumer, "id", d.ID, "subject", d.Subject, "err", err,
			"dead_letter", b.opts.OnDead != nil)
		_ = m.Term()
	case ctx.Err() != nil:
		// Shutting down: leave it for redelivery.
	default:
		delay := min(time.Duration(d.Attempt*d.Attempt)*100*time.Millisecond, 10*time.Second)
		b.opts.Logger.WarnContext(ctx, "natsbus: handler failed; redelivering", "consumer", consumer, "id", d.ID, "attempt", d.Attempt, "retry_in", delay, "err", err)
		_ = m.NakWithDelay(delay)
	}
}

// DeleteStream deletes stream name and every message in it.
func (b *Bus) DeleteStream(ctx context.Context, name string) error {
	if err := b.js.DeleteStream(ctx, b.Stream(name)); err != nil {
		return fmt.Errorf("natsbus: delete stream %s: %w", name, err)
	}
	return nil
}

// errStreamStoreFailed is JetStream's "error creating store for stream"
// (the client names no constant for it).
const errStreamStoreFailed jetstream.ErrorCode = 10049
