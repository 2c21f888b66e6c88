package api

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/platform/auth"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
)

type transferRequest struct {
	ID            string `json:"id"`
	FromAccountID string `json:"from_account_id"`
	ToAccountID   string `json:"to_account_id"`
	Amount        amount `json:"amount"`
}

func (h *Handler) transfer(w http.ResponseWriter, r *http.Request) {
	var req transferRequest
	if err := httpapi.Decode(w, r, &req); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var bad []errs.FieldError
	for _, f := range []struct{ name, v string }{{"from_account_id", req.FromAccountID}, {"to_account_id", req.ToAccountID}} {
		if fe := httpapi.ID(f.name, f.v); fe != nil {
			bad = append(bad, *fe)
		}
	}
	if req.ID != "" {
		if _, err := uuid.Parse(req.ID); err != nil {
			bad = append(bad, errs.FieldError{Field: "id", Message: "must be a UUID"})
		}
	}
	if !req.Amount.set {
		bad = append(bad, errs.FieldError{Field: "amount", Message: "is required"})
	}
	if len(bad) == 0 && req.FromAccountID == req.ToAccountID {
		bad = append(bad, errs.FieldError{Field: "to_account_id", Message: "must differ from from_account_id"})
	}
	if len(bad) > 0 {
		httpapi.Error(w, r, errs.Fields(bad...))
		return
	}
	c, err := auth.Caller(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	t, pos, err := h.transfers.Start(r.Context(), c, meta(r), app.TransferRequest{ID: req.ID, From: req.FromAccountID,
		To: req.ToAccountID, Amount: req.Amount.in})
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if pos > 0 { // 0: the same transfer, asked again
		setPosition(w, h.transfers.PartitionOf(t.ID), pos)
	}
	w.Header().Set("Location", "/api/v1/transfers/"+t.ID)
	httpapi.JSON(w, http.StatusAccepted, t)
}
