package ledger

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/projections"
)

// Server is the embedded NATS server, or nil when the ledger uses an
// external one (Config.NATSURL). The load command uses it to give its
// baseline responders the same in-process connection the ledger's own
// service has, so a comparison does not favour either side.
func (l *Ledger) Server() *server.Server { return l.srv }

// Store is the ledger's projection store (the load command reads its
// metrics).
func (l *Ledger) Store() *projections.Store { return l.store }
