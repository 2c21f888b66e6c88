package carrier

import (
	"context"
	"fmt"
	"testing"
)

// TestBookingsStayBounded: the simulator remembers at most maxBookings
// bookings however many it books, and a recent booking repeated gets the
// same waybill.
func TestBookingsStayBounded(t *testing.T) {
	ctx := context.Background()
	s := NewSim(0, 0)
	to := Recipient{Line1: "1 Main St", Town: "Springfield", Region: "IL", Postcode: "62701", CountryCode: "US"}
	var last Booking
	for i := range 3 * maxBookings {
		b, err := s.Book(ctx, BookingRequest{ClientRef: fmt.Sprint("order-", i), To: to})
		if err != nil {
			t.Fatal(err)
		}
		last = b
	}
	if n := s.bookings.Len(); n > maxBookings {
		t.Fatalf("the simulator holds %d bookings, more than its bound %d", n, maxBookings)
	}
	again, err := s.Book(ctx, BookingRequest{ClientRef: fmt.Sprint("order-", 3*maxBookings-1), To: to})
	if err != nil || again != last {
		t.Fatalf("repeated booking: %+v, %v; want %+v", again, err, last)
	}
}
