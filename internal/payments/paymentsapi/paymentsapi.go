// Package paymentsapi is the payments context's published language: the
// integration events it publishes about order payments, version 1.
package paymentsapi

import "github.com/agora-commerce/agora/money"

// Subjects and types of the payments' integration events.
const (
	SubjectPaymentCaptured = "payments.payment.captured"
	SubjectPaymentFailed   = "payments.payment.failed"
	SubjectPaymentRefunded = "payments.payment.refunded"

	TypePaymentCaptured = "payments.PaymentCaptured.v1"
	TypePaymentFailed   = "payments.PaymentFailed.v1"
	TypePaymentRefunded = "payments.PaymentRefunded.v1"
)

// Payment is the body of PaymentCaptured and PaymentRefunded.
type Payment struct {
	// OrderID is the order paid for.
	OrderID string `json:"order_id"`
	// Amount is what moved.
	Amount money.Money `json:"amount"`
}

// PaymentFailed says an order's payment was declined; nothing moved.
type PaymentFailed struct {
	// OrderID is the order.
	OrderID string `json:"order_id"`
	// Reason is "insufficient_funds", "account_closed" or "cancelled".
	Reason string `json:"reason"`
}

// OrderReference is the transfer reference of an order's payment.
func OrderReference(orderID string) string { return "order:" + orderID }
