package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
)

// Member asks the cluster member named name (a ledger process or a
// standalone projector) how far it is and what it owns.
func (c *Client) Member(ctx context.Context, name string) (*api.MemberStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, api.MemberStatusSubject(name), nil)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	var st api.MemberStatus
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		return nil, fmt.Errorf("member %s: decode status: %w", name, err)
	}
	return &st, nil
}

// Members asks every member of the cluster at once and gathers the answers
// that arrive within wait, sorted by name. Nobody knows how many members
// there are, so the wait is the only end.
func (c *Client) Members(ctx context.Context, wait time.Duration) ([]api.MemberStatus, error) {
	inbox := c.nc.NewInbox() // the connection's prefix: its user's private inboxes
	ch := make(chan *nats.Msg, 256)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(api.SubjectClusterStatus, inbox, nil); err != nil {
		return nil, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var out []api.MemberStatus
	for {
		select {
		case m := <-ch:
			var st api.MemberStatus
			if err := json.Unmarshal(m.Data, &st); err != nil {
				return nil, fmt.Errorf("decode member status: %w", err)
			}
			out = append(out, st)
		case <-timer.C:
			slices.SortFunc(out, func(a, b api.MemberStatus) int { return strings.Compare(a.Member, b.Member) })
			return out, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
