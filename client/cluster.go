package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/cluster"
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
// that arrive within wait, sorted by name (cluster.Members).
func (c *Client) Members(ctx context.Context, wait time.Duration) ([]api.MemberStatus, error) {
	return cluster.Members(ctx, c.nc, wait)
}
