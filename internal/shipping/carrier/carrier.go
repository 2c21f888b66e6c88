// Package carrier is a simulated parcel carrier, "Parcelo", with its own
// model (bookings, recipients, waybills) that the shipping context reaches
// only through its anti-corruption layer. Its failure rate and latency are
// configurable so that failures can be tested.
package carrier

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agora-commerce/agora/internal/backoff"
	"github.com/agora-commerce/agora/internal/bounded"
)

// Name is the carrier's name as shipments show it.
const Name = "Parcelo"

// Recipient is where Parcelo delivers.
type Recipient struct {
	Line1, Town, Region, Postcode, CountryCode string
}

// BookingRequest asks Parcelo to collect a parcel.
type BookingRequest struct {
	// ClientRef is the client's idempotency reference: booking it again
	// returns the first booking.
	ClientRef string
	// To is the recipient.
	To Recipient
}

// Booking is a confirmed collection.
type Booking struct {
	// Waybill is Parcelo's tracking number.
	Waybill string
}

// Errors.
var (
	// ErrUndeliverable: Parcelo will not deliver there (a refusal).
	ErrUndeliverable = errors.New("parcelo: undeliverable")
	// ErrUnavailable: Parcelo could not answer (try again).
	ErrUnavailable = errors.New("parcelo: service unavailable")
)

// UndeliverablePostcode is refused every time: tests use it for a
// deterministic shipping failure.
const UndeliverablePostcode = "00000"

// Sim is the simulated Parcelo service. Its settings may change while it
// runs (tests slow it down to catch an order mid-checkout).
type Sim struct {
	mu          sync.Mutex
	failureRate float64
	latency     time.Duration
	// bookings are the newest maxBookings bookings by client reference,
	// for Book's idempotency: a repeated booking (a retry seconds later)
	// gets the same waybill, and memory stays flat however many
	// shipments the simulator has booked.
	bookings *bounded.Map[string, Booking]
	seq      uint64
	calls    atomic.Int64
}

// maxBookings bounds the bookings Sim remembers (about 100 bytes each).
const maxBookings = 1 << 14

// Calls is how many calls (bookings and cancellations) reached the
// carrier.
func (s *Sim) Calls() int64 { return s.calls.Load() }

// NewSim returns a carrier that refuses failureRate (0..1) of new
// bookings and takes latency for every call.
func NewSim(failureRate float64, latency time.Duration) *Sim {
	return &Sim{failureRate: failureRate, latency: latency}
}

// Set changes the failure rate and latency.
func (s *Sim) Set(failureRate float64, latency time.Duration) {
	s.mu.Lock()
	s.failureRate, s.latency = failureRate, latency
	s.mu.Unlock()
}

func (s *Sim) wait(ctx context.Context) error {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if err := backoff.Sleep(ctx, d); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Book books a collection, or refuses it with ErrUndeliverable.
func (s *Sim) Book(ctx context.Context, req BookingRequest) (Booking, error) {
	s.calls.Add(1)
	if err := s.wait(ctx); err != nil {
		return Booking{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bookings == nil {
		s.bookings = bounded.New[string, Booking](maxBookings)
	}
	if b, ok := s.bookings.Get(req.ClientRef); ok {
		return b, nil
	}
	if req.To.Postcode == UndeliverablePostcode || (s.failureRate > 0 && rand.Float64() < s.failureRate) {
		return Booking{}, ErrUndeliverable
	}
	s.seq++
	b := Booking{Waybill: fmt.Sprintf("PCL%012d", s.seq)}
	s.bookings.Put(req.ClientRef, b)
	return b, nil
}

// Cancel calls a booking off (unknown waybills are ignored).
func (s *Sim) Cancel(ctx context.Context, waybill string) error {
	s.calls.Add(1)
	return s.wait(ctx)
}
