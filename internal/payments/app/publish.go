package app

import (
	"strings"

	"github.com/agora-commerce/agora/eventstore"
	"github.com/agora-commerce/agora/internal/payments"
	"github.com/agora-commerce/agora/internal/payments/paymentsapi"
	"github.com/agora-commerce/agora/messaging"
)

// Publish maps a payments record to its integration event: the legs of an
// order's payment become PaymentCaptured (the credit), PaymentFailed (a
// decline) and PaymentRefunded (the debit given back).
func Publish(r eventstore.Record) (messaging.Message, bool, error) {
	if _, ok := IsAccountStream(r.StreamID); !ok {
		return messaging.Message{}, false, nil
	}
	switch r.Type {
	case payments.TypeTransferCredited, payments.TypeTransferDeclined, payments.TypeTransferRefunded:
	default:
		return messaging.Message{}, false, nil
	}
	e, err := Decode(r)
	if err != nil {
		return messaging.Message{}, false, err
	}
	var leg payments.TransferLeg
	switch e := e.(type) {
	case payments.TransferCredited:
		leg = payments.TransferLeg(e)
	case payments.TransferDeclined:
		leg = payments.TransferLeg(e)
	case payments.TransferRefunded:
		leg = payments.TransferLeg(e)
	}
	order, ok := strings.CutPrefix(leg.Reference, "order:")
	if !ok {
		return messaging.Message{}, false, nil
	}
	var m messaging.Message
	switch r.Type {
	case payments.TypeTransferCredited:
		m, err = messaging.NewMessage(paymentsapi.SubjectPaymentCaptured, paymentsapi.TypePaymentCaptured, paymentsapi.Payment{OrderID: order, Amount: leg.Amount})
	case payments.TypeTransferDeclined:
		m, err = messaging.NewMessage(paymentsapi.SubjectPaymentFailed, paymentsapi.TypePaymentFailed, paymentsapi.PaymentFailed{OrderID: order, Reason: leg.Reason})
	default:
		m, err = messaging.NewMessage(paymentsapi.SubjectPaymentRefunded, paymentsapi.TypePaymentRefunded, paymentsapi.Payment{OrderID: order, Amount: leg.Amount})
	}
	return m, err == nil, err
}
