package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
)

// Members asks every member of the cluster (ledgers and projectors) for
// its status at once and gathers the answers that arrive within wait,
// sorted by name. Nobody knows how many members there are, so the wait is
// the only end. The replies come to nc's own inbox prefix, the only one a
// user's permissions let it receive on.
func Members(ctx context.Context, nc *nats.Conn, wait time.Duration) ([]api.MemberStatus, error) {
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(api.SubjectClusterStatus, inbox, nil); err != nil {
		return nil, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	out := []api.MemberStatus{}
	for {
		select {
		case m := <-ch:
			var st api.MemberStatus
			if err := json.Unmarshal(m.Data, &st); err != nil {
				return nil, fmt.Errorf("decode member status: %w", err)
			}
			out = append(out, st)
		case <-timer.C:
			slices.SortFunc(out, func(a, b api.MemberStatus) int { return cmp.Compare(a.Member, b.Member) })
			return out, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
