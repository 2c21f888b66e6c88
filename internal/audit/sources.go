package audit

import (
	"database/sql"

	"github.com/agora-commerce/agora/internal/payments/readmodel"
	"github.com/agora-commerce/agora/saga"
)

// ReadModels returns the sources a platform keeps in its read-model
// database db: the payments read model and the saga index. The caller
// adds the log, the relays and the consumers.
func ReadModels(db *sql.DB) Sources {
	return Sources{Accounts: readmodel.NewQueries(db), Sagas: saga.ReadIndex(db)}
}
