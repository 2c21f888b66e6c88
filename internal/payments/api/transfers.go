package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/google/uuid"

	"github.com/agora-commerce/agora/internal/payments/app"
	"github.com/agora-commerce/agora/internal/platform/errs"
	"github.com/agora-commerce/agora/internal/platform/httpapi"
	"github.com/agora-commerce/agora/saga"
)

// WithTransfers serves POST/GET /api/v1/transfers, run as sagas on engine
// (where app.TransferSaga must be registered).
func (h *Handler) WithTransfers(engine *saga.Engine) *Handler {
	h.sagas = engine
	return h
}

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
		if fe := validID(f.name, f.v); fe != nil {
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
	from, err := h.visible(r, req.FromAccountID)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	to, _, err := h.svc.Get(r.Context(), req.ToAccountID)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	amt := req.Amount.in(from.Currency)
	switch {
	case amt.Currency != from.Currency || amt.Currency != to.Currency:
		httpapi.Error(w, r, &errs.Error{Code: errs.Unprocessable, Reason: "currency_mismatch", Message: "both accounts and the amount must share one currency",
			Fields: []errs.FieldError{{Field: "amount.currency", Message: "must be both accounts' currency"}}})
		return
	case !amt.IsPositive():
		httpapi.Error(w, r, &errs.Error{Code: errs.Unprocessable, Reason: "invalid_amount", Message: "the amount must be positive",
			Fields: []errs.FieldError{{Field: "amount.amount", Message: "must be greater than zero"}}})
		return
	}
	if req.ID == "" {
		req.ID = uuid.Must(uuid.NewV7()).String()
	}
	d := app.TransferData{ID: req.ID, From: from.ID, To: to.ID, Amount: amt}
	pos, err := h.sagas.Start(saga.WithMetadata(r.Context(), meta(r)), app.TransferSagaType, app.TransferSagaID(d.ID), d)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	httpapi.SetPosition(w, pos)
	w.Header().Set("Location", "/api/v1/transfers/"+d.ID)
	httpapi.JSON(w, http.StatusAccepted, app.Transfer{ID: d.ID, Status: "Pending", FromAccountID: d.From, ToAccountID: d.To,
		Amount: d.Amount, SagaID: app.TransferSagaID(d.ID)})
}

func (h *Handler) getTransfer(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	in, err := h.sagas.Get(r.Context(), app.TransferSagaID(id))
	if errors.Is(err, saga.ErrNotFound) || (err == nil && in.Type != app.TransferSagaType) {
		httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "transfer_not_found", Message: "no such transfer"})
		return
	}
	if err != nil {
		httpapi.Error(w, r, err)
		return
	}
	var d app.TransferData
	if err := json.Unmarshal(in.Data, &d); err != nil {
		httpapi.Error(w, r, err)
		return
	}
	if _, err := h.visible(r, d.From); err != nil {
		httpapi.Error(w, r, &errs.Error{Code: errs.NotFound, Reason: "transfer_not_found", Message: "no such transfer"})
		return
	}
	httpapi.JSON(w, http.StatusOK, app.TransferFromSaga(in, d))
}
