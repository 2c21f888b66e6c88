package carrier_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/agora-commerce/agora/internal/shipping/carrier"
)

var waybillRE = regexp.MustCompile(`^PCL[0-9]{12}$`)

func req(ref string) carrier.BookingRequest {
	return carrier.BookingRequest{ClientRef: ref, To: carrier.Recipient{
		Line1: "1 Main St", Town: "Springfield", Region: "IL", Postcode: "62701", CountryCode: "US"}}
}

// never is a latency no test waits out: a call that returns at all
// honoured its context.
const never = time.Hour

func TestFailureRateZeroNeverRefuses(t *testing.T) {
	sim := carrier.NewSim(0, 0)
	seen := map[string]string{}
	for i := range 500 {
		ref := fmt.Sprintf("order-%d", i)
		b, err := sim.Book(context.Background(), req(ref))
		if err != nil {
			t.Fatalf("booking %d: %v", i, err)
		}
		if !waybillRE.MatchString(b.Waybill) {
			t.Fatalf("waybill %q is not PCL and 12 digits", b.Waybill)
		}
		if prev, dup := seen[b.Waybill]; dup {
			t.Fatalf("waybill %s given to %s and %s", b.Waybill, prev, ref)
		}
		seen[b.Waybill] = ref
	}
}

func TestFailureRateOneAlwaysRefuses(t *testing.T) {
	sim := carrier.NewSim(1, 0)
	for i := range 500 {
		b, err := sim.Book(context.Background(), req(fmt.Sprintf("order-%d", i)))
		if !errors.Is(err, carrier.ErrUndeliverable) {
			t.Fatalf("booking %d: %v, %+v; want ErrUndeliverable", i, err, b)
		}
		if errors.Is(err, carrier.ErrUnavailable) {
			t.Fatalf("booking %d: a refusal is also ErrUnavailable: %v", i, err)
		}
		if b != (carrier.Booking{}) {
			t.Fatalf("refused booking %d has a waybill: %+v", i, b)
		}
	}
}

func TestFailureRateInBetweenRefusesSome(t *testing.T) {
	sim := carrier.NewSim(0.5, 0)
	const n = 2000
	refused := 0
	for i := range n {
		_, err := sim.Book(context.Background(), req(fmt.Sprintf("order-%d", i)))
		switch {
		case errors.Is(err, carrier.ErrUndeliverable):
			refused++
		case err != nil:
			t.Fatalf("booking %d: %v", i, err)
		}
	}
	// Binomial(2000, 0.5) has a standard deviation of about 22; these
	// bounds are more than 13 of them away from the mean.
	if refused < 700 || refused > 1300 {
		t.Errorf("refused %d of %d bookings at failure rate 0.5", refused, n)
	}
}

func TestUndeliverablePostcodeIsAlwaysRefused(t *testing.T) {
	sim := carrier.NewSim(0, 0)
	r := req("order-1")
	r.To.Postcode = carrier.UndeliverablePostcode
	for range 3 {
		if _, err := sim.Book(context.Background(), r); !errors.Is(err, carrier.ErrUndeliverable) {
			t.Fatalf("booking to %s: %v, want ErrUndeliverable", carrier.UndeliverablePostcode, err)
		}
	}
	// A refusal is not remembered: the same reference to a deliverable
	// address is booked.
	b, err := sim.Book(context.Background(), req("order-1"))
	if err != nil || b.Waybill == "" {
		t.Fatalf("booking after a refusal: %+v, %v", b, err)
	}
}

func TestBookingIsIdempotentByClientRef(t *testing.T) {
	sim := carrier.NewSim(0, 0)
	first, err := sim.Book(context.Background(), req("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sim.Book(context.Background(), req("order-2"))
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Fatalf("two references share waybill %s", first.Waybill)
	}
	again, err := sim.Book(context.Background(), req("order-1"))
	if err != nil || again != first {
		t.Fatalf("rebooking order-1 = %+v, %v; want the first booking %+v", again, err, first)
	}

	// The first booking is returned even when a new one would now be
	// refused, whatever the address.
	sim.Set(1, 0)
	again, err = sim.Book(context.Background(), req("order-1"))
	if err != nil || again != first {
		t.Fatalf("rebooking order-1 at failure rate 1 = %+v, %v; want the first booking %+v", again, err, first)
	}
	r := req("order-1")
	r.To.Postcode = carrier.UndeliverablePostcode
	again, err = sim.Book(context.Background(), r)
	if err != nil || again != first {
		t.Fatalf("rebooking order-1 to another address = %+v, %v; want the first booking %+v", again, err, first)
	}
	if _, err := sim.Book(context.Background(), req("order-3")); !errors.Is(err, carrier.ErrUndeliverable) {
		t.Fatalf("new booking at failure rate 1: %v, want ErrUndeliverable", err)
	}
}

func TestConcurrentBookings(t *testing.T) {
	sim := carrier.NewSim(0, 0)
	const workers, each = 8, 50
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		byWB = map[string]string{}
		same = map[string]bool{}
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ref := fmt.Sprintf("w%d-%d", w, i)
				b, err := sim.Book(context.Background(), req(ref))
				if err != nil {
					t.Error(err)
					return
				}
				shared, err := sim.Book(context.Background(), req("shared"))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := byWB[b.Waybill]; dup {
					t.Errorf("waybill %s given to %s and %s", b.Waybill, prev, ref)
				}
				byWB[b.Waybill] = ref
				same[shared.Waybill] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(byWB) != workers*each {
		t.Errorf("%d distinct waybills, want %d", len(byWB), workers*each)
	}
	if len(same) != 1 {
		t.Errorf("concurrent bookings of one reference got %d waybills, want 1", len(same))
	}
}

func TestLatencyHonoursCancelledContext(t *testing.T) {
	sim := carrier.NewSim(0, never)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, err := sim.Book(ctx, req("order-1"))
	if !errors.Is(err, carrier.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Book with a cancelled context: %v; want ErrUnavailable wrapping context.Canceled", err)
	}
	if errors.Is(err, carrier.ErrUndeliverable) {
		t.Errorf("an unanswered booking is reported as a refusal: %v", err)
	}
	if b != (carrier.Booking{}) {
		t.Errorf("unanswered booking has a waybill: %+v", b)
	}
	if err := sim.Cancel(ctx, "PCL000000000001"); !errors.Is(err, carrier.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Cancel with a cancelled context: %v; want ErrUnavailable wrapping context.Canceled", err)
	}

	// The unanswered booking was not made: once the carrier is fast again,
	// it gets the first waybill.
	sim.Set(0, 0)
	b, err = sim.Book(context.Background(), req("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	if b.Waybill != "PCL000000000001" {
		t.Errorf("first answered booking got %s, want PCL000000000001", b.Waybill)
	}
}

func TestLatencyHonoursDeadline(t *testing.T) {
	sim := carrier.NewSim(0, never)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := sim.Book(ctx, req("order-1"))
	if !errors.Is(err, carrier.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Book past its deadline: %v; want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
}

func TestCancellingDuringLatencyEndsTheCall(t *testing.T) {
	sim := carrier.NewSim(0, never)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() {
		_, err := sim.Book(ctx, req("order-1"))
		done <- err
	}()
	go func() { done <- sim.Cancel(ctx, "PCL000000000001") }()
	cancel()
	for range 2 {
		if err := <-done; !errors.Is(err, carrier.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("call cancelled while waiting: %v; want ErrUnavailable wrapping context.Canceled", err)
		}
	}
}

// Set applies to calls made after it: a slow carrier made fast answers.
func TestSetChangesLatencyAndFailureRate(t *testing.T) {
	sim := carrier.NewSim(1, never)
	sim.Set(0, 0)
	b, err := sim.Book(context.Background(), req("order-1"))
	if err != nil || !waybillRE.MatchString(b.Waybill) {
		t.Fatalf("Book after Set(0, 0) = %+v, %v", b, err)
	}
	sim.Set(0, never)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sim.Book(ctx, req("order-1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Book after Set(0, never) with a cancelled context: %v", err)
	}
}

func TestCancelWithoutLatency(t *testing.T) {
	sim := carrier.NewSim(1, 0)
	if err := sim.Cancel(context.Background(), "PCL999999999999"); err != nil {
		t.Errorf("Cancel of an unknown waybill: %v, want nil (ignored)", err)
	}
}
