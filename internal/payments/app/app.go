// Package app is the payments context's application layer: the commands
// that drive Account aggregates through the event store, and the codec
// between domain events and stored records.
package app

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/aggregate"
	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/partition"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/money"
)

// StreamPrefix is the aggregate type name; account id's stream is "account-<id>".
const StreamPrefix = "account"

// SnapshotEvery is how often (in events) an account is snapshotted.
const SnapshotEvery = 100

// AccountType describes the Account aggregate to the repository.
func AccountType() aggregate.Type[payments.Account, payments.Event] {
	return aggregate.Type[payments.Account, payments.Event]{
		Name:          StreamPrefix,
		Initial:       func() payments.Account { return payments.Account{} },
		Evolve:        payments.Evolve,
		Encode:        Encode,
		Decode:        Decode,
		SnapshotEvery: SnapshotEvery,
		StateVersion:  3,
	}
}

var codec = func() *aggregate.Codec[payments.Event] {
	c := aggregate.NewCodec[payments.Event]()
	aggregate.Register[payments.AccountOpened](c)
	aggregate.Register[payments.MoneyDeposited](c)
	aggregate.Register[payments.MoneyWithdrawn](c)
	aggregate.Register[payments.AccountClosed](c)
	aggregate.Register[payments.TransferDebited](c)
	aggregate.Register[payments.TransferCredited](c)
	aggregate.Register[payments.TransferRefunded](c)
	aggregate.Register[payments.TransferReversed](c)
	aggregate.Register[payments.TransferDeclined](c)
	aggregate.Register[payments.TransferVoided](c)
	return c
}()

// Encode turns a payments event into an event to append.
func Encode(e payments.Event) (eventstore.EventData, error) { return codec.Encode(e) }

// Decode turns a stored record into a payments event.
func Decode(r eventstore.Record) (payments.Event, error) { return codec.Decode(r) }

// IsAccountStream reports whether a stream ID is an account's, and returns the account ID.
func IsAccountStream(stream string) (string, bool) {
	return strings.CutPrefix(stream, StreamPrefix+"-")
}

// Service runs payments commands.
type Service struct {
	// repos are the partitions' repositories: account id lives in
	// repos[partition.Of(id, len(repos))].
	repos  []*aggregate.Repository[payments.Account, payments.Event]
	stores []eventstore.Store
	now    func() time.Time
}

// NewService returns a Service on the partitions' stores (one store: no
// partitioning). Each partition caches up to 4096 accounts.
func NewService(stores ...eventstore.Store) *Service {
	s := &Service{now: time.Now, stores: stores}
	for _, st := range stores {
		s.repos = append(s.repos, aggregate.NewRepository(st, AccountType(), aggregate.WithCache(4096)))
	}
	return s
}

// Partitions is the number of partitions s spreads accounts over.
func (s *Service) Partitions() int { return len(s.repos) }

// PartitionOf is the partition account id lives in.
func (s *Service) PartitionOf(id string) int { return partition.Of(id, len(s.repos)) }

// StoreOf is the event store of account id's partition.
func (s *Service) StoreOf(id string) eventstore.Store { return s.stores[s.PartitionOf(id)] }

// repo is the repository of account id's partition.
func (s *Service) repo(id string) *aggregate.Repository[payments.Account, payments.Event] {
	return s.repos[s.PartitionOf(id)]
}

// Result is what a command produced: the account after it and the
// position of its last event (for Agora-Position).
type Result struct {
	// Account is the account's state after the command.
	Account payments.Account
	// Version is the account stream's version after the command.
	Version uint64
	// Position is the position of the command's last event in the log
	// of the account's partition, Partition.
	Position  uint64
	Partition int
}

func (s *Service) result(id string, r aggregate.Result[payments.Account, payments.Event]) Result {
	return Result{Account: r.State, Version: r.Version, Position: r.Append.LastPosition, Partition: s.PartitionOf(id)}
}

// OpenAccount is the command to open an account.
type OpenAccount struct {
	// ID is the new account's ID; empty means a new UUIDv7.
	ID string
	// OwnerID is the owner's ID.
	OwnerID string
	// Initial is the initial balance (zero amount allowed); its currency is the account's.
	Initial money.Money
}

// Open opens an account.
func (s *Service) Open(ctx context.Context, meta eventstore.Metadata, cmd OpenAccount) (Result, error) {
	if cmd.ID == "" {
		cmd.ID = uuid.Must(uuid.NewV7()).String()
	}
	res, err := s.repo(cmd.ID).Handle(ctx, cmd.ID, meta, func(l aggregate.Loaded[payments.Account]) ([]payments.Event, error) {
		return l.State.Open(cmd.ID, cmd.OwnerID, meta.Tenant, cmd.Initial, s.now())
	})
	if err != nil {
		return Result{}, err
	}
	return s.result(cmd.ID, res), nil
}

// Caller is who asks for a use case: it may see a resource of a tenant
// owned by an owner, or not (auth.Claims is one). To a caller who may
// not see an account, the account does not exist.
type Caller interface {
	CanSee(tenant, owner string) bool
}

// System is the platform itself as a caller: it sees every account.
var System Caller = system{}

type system struct{}

func (system) CanSee(string, string) bool { return true }

// Amount is an amount a caller asks to move, given the account's
// currency (a bare number of minor units takes it).
type Amount func(money.Currency) money.Money

// Exactly is the amount m, whatever the account's currency.
func Exactly(m money.Money) Amount { return func(money.Currency) money.Money { return m } }

// Deposit deposits amount into account id, which c must see.
func (s *Service) Deposit(ctx context.Context, c Caller, meta eventstore.Metadata, id string, amount Amount) (Result, error) {
	return s.handle(ctx, c, meta, id, func(a payments.Account) ([]payments.Event, error) { return a.Deposit(amount(a.Currency), s.now()) })
}

// Withdraw withdraws amount from account id, which c must see.
func (s *Service) Withdraw(ctx context.Context, c Caller, meta eventstore.Metadata, id string, amount Amount) (Result, error) {
	return s.handle(ctx, c, meta, id, func(a payments.Account) ([]payments.Event, error) { return a.Withdraw(amount(a.Currency), s.now()) })
}

// Close closes account id, which c must see.
func (s *Service) Close(ctx context.Context, c Caller, meta eventstore.Metadata, id string) (Result, error) {
	return s.handle(ctx, c, meta, id, func(a payments.Account) ([]payments.Event, error) { return a.Close(s.now()) })
}

// Account loads account id from its events (the write side) for c, who
// must see it.
func (s *Service) Account(ctx context.Context, c Caller, id string) (payments.Account, uint64, error) {
	a, v, err := s.Get(ctx, id)
	if err == nil && !visible(c, a) {
		return payments.Account{}, 0, payments.ErrNotOpen
	}
	return a, v, err
}

// visible reports whether c may see a: its owner or an admin of its
// tenant (an account recorded without a tenant is the default tenant's).
func visible(c Caller, a payments.Account) bool {
	return c.CanSee(a.Tenant, a.OwnerID)
}

// Get loads account id from its events (the write side), whoever asks:
// for the platform's own use (other contexts' calls, sagas).
func (s *Service) Get(ctx context.Context, id string) (payments.Account, uint64, error) {
	l, err := s.repo(id).Current(ctx, id)
	if err != nil {
		return payments.Account{}, 0, err
	}
	if !l.State.Opened() {
		return payments.Account{}, 0, payments.ErrNotOpen
	}
	return l.State, l.Version, nil
}

// handle runs decide on account id for c: one load, in which c must see
// the account (else it does not exist: ErrNotOpen), then the append.
func (s *Service) handle(ctx context.Context, c Caller, meta eventstore.Metadata, id string, decide func(payments.Account) ([]payments.Event, error)) (Result, error) {
	if id == "" {
		return Result{}, errs.E(errs.Invalid, "account ID is empty")
	}
	res, err := s.repo(id).Handle(ctx, id, meta, func(l aggregate.Loaded[payments.Account]) ([]payments.Event, error) {
		if !l.State.Opened() || !visible(c, l.State) {
			return nil, payments.ErrNotOpen
		}
		return decide(l.State)
	})
	if err != nil {
		return Result{}, err
	}
	return s.result(id, res), nil
}
