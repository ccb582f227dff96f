package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

// Client calls the ledger service over NATS request/reply. It is safe for
// concurrent use. Its first request subscribes to a reply inbox of its own
// on the connection, for as long as the connection lasts or until Close.
type Client struct {
	nc      *nats.Conn
	enc     api.Encoding
	timeout time.Duration
	replies replies
	bodies  sync.Pool // *[]byte: request bodies, reused once published
	batch   batcher

	policy   FailurePolicy // failure.go
	degraded atomic.Uint64 // decision calls answered under FailOpen
}

// Option configures a Client.
type Option func(*Client) error

// WithJSON makes the client speak JSON instead of msgpack (for debugging
// with a message tap; msgpack is smaller and faster).
func WithJSON() Option {
	return func(c *Client) error { c.enc = api.JSON; return nil }
}

// WithTimeout bounds each request (default 5 s); a sooner deadline of the
// request's context wins.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error {
		if d <= 0 {
			return fmt.Errorf("client: timeout must be positive, got %s", d)
		}
		c.timeout = d
		return nil
	}
}

// New returns a client using nc. The connection stays the caller's.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	if nc == nil {
		return nil, errors.New("client: nil connection")
	}
	c := &Client{nc: nc, enc: api.Msgpack, timeout: 5 * time.Second, replies: replies{nc: nc}}
	c.batch.c = c
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Close releases the client's reply subscription (the connection stays
// the caller's); a request still waiting then times out. A client used
// after Close subscribes again.
func (c *Client) Close() error {
	return c.replies.close()
}

// maxPooledBody bounds the request bodies kept for reuse.
const maxPooledBody = 64 << 10

// callFor sends req for tenant to op's subject (api.TenantSubject). A
// tenant that cannot be a subject token is refused here, as the service
// would refuse it.
func (c *Client) callFor(ctx context.Context, op, tenant string, req, reply any) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	return c.call(ctx, api.TenantSubject(op, tenant), req, reply)
}

func checkTenant(tenant string) error {
	if !events.ValidTenant(tenant) {
		return &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("tenant: %q cannot be a subject token", tenant), Details: map[string]any{"field": "tenant"}}
	}
	return nil
}

// call sends req to subject and decodes the reply into reply, or returns the
// ledger's typed error.
func (c *Client) call(ctx context.Context, subject string, req, reply any) error {
	_, err := c.exchange(ctx, subject, req, reply)
	return err
}

// exchange is call, also saying whether nobody subscribes to subject.
func (c *Client) exchange(ctx context.Context, subject string, req, reply any) (noResponders bool, err error) {
	// The publish copies the body, so its buffer is reused (a check's body
	// is then encoded without allocating).
	bp, _ := c.bodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	body, err := api.AppendEncode((*bp)[:0], c.enc, req)
	if err != nil {
		return false, fmt.Errorf("encode %s request: %w", subject, err)
	}
	// Each request is bounded by the client's timeout, or ctx if sooner: a
	// request lost with a server that died is retried, not waited on forever.
	msg, err := c.replies.request(ctx, subject, body, c.timeout)
	if cap(body) <= maxPooledBody {
		*bp = body
		c.bodies.Put(bp)
	}
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return true, &events.Error{Code: events.CodeUnavailable, Message: "no ledger service is answering on " + subject, Suggestion: "start the ledger (ledger serve) or check the NATS URL"}
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return false, &events.Error{Code: events.CodeUnavailable, Message: "the ledger did not answer in time on " + subject, Suggestion: "retry; writes are idempotent by event ID"}
		}
		if down := unreachable(subject, err); down != nil {
			return false, down
		}
		return false, fmt.Errorf("%s: %w", subject, err)
	}
	if msg.Header.Get(api.HeaderErrorCode) != "" {
		var er api.ErrorReply
		if err := api.Decode(msg.Data, &er); err != nil || er.Error == nil {
			return false, &events.Error{Code: events.CodeInternal, Message: fmt.Sprintf("%s: %s", subject, msg.Header.Get("Nats-Service-Error"))}
		}
		return false, er.Error
	}
	if err := api.Decode(msg.Data, reply); err != nil {
		return false, fmt.Errorf("decode %s reply: %w", subject, err)
	}
	return false, nil
}

// Check asks whether a call may run now, without consuming anything. A denial
// is not an error: see CheckReply.Allowed, Code and Message. When the ledger
// does not answer, the error matches ErrUnavailable, or under FailOpen the
// reply is Allowed and Degraded (WithFailurePolicy).
func (c *Client) Check(ctx context.Context, req api.CheckRequest) (*api.CheckReply, error) {
	var r api.CheckReply
	err := c.callFor(ctx, api.SubjectCheck, req.Tenant, req, &r)
	if err != nil && c.failOpen(err) {
		return &api.CheckReply{Allowed: true, Degraded: true}, nil
	}
	return &r, err
}

// SetQuota creates or replaces a quota of a tenant.
func (c *Client) SetQuota(ctx context.Context, tenant string, q events.Quota) (*api.QuotaReply, error) {
	var r api.QuotaReply
	return &r, c.callFor(ctx, api.SubjectQuotaSet, tenant, api.QuotaSetRequest{Tenant: tenant, Quota: q}, &r)
}

// DeleteQuota stops enforcing a quota.
func (c *Client) DeleteQuota(ctx context.Context, tenant, id string) (*api.WriteReply, error) {
	var r api.WriteReply
	return &r, c.callFor(ctx, api.SubjectQuotaDelete, tenant, api.QuotaRequest{Tenant: tenant, ID: id}, &r)
}

// GetQuota returns one quota.
func (c *Client) GetQuota(ctx context.Context, tenant, id string) (*api.QuotaReply, error) {
	var r api.QuotaReply
	return &r, c.callFor(ctx, api.SubjectQuotaGet, tenant, api.QuotaRequest{Tenant: tenant, ID: id}, &r)
}

// ListQuotas returns a tenant's quotas by ID.
func (c *Client) ListQuotas(ctx context.Context, tenant string) ([]api.QuotaReply, error) {
	var r api.QuotaListReply
	return r.Quotas, c.callFor(ctx, api.SubjectQuotaList, tenant, api.TenantRequest{Tenant: tenant}, &r)
}

// Usage returns a tenant's all-time totals. With afterSeq > 0 the answer
// waits until the projection covers that stream sequence.
func (c *Client) Usage(ctx context.Context, tenant string, afterSeq uint64) (*api.UsageReply, error) {
	var r api.UsageReply
	return &r, c.callFor(ctx, api.SubjectUsage, tenant, api.TenantRequest{Tenant: tenant, AfterSeq: afterSeq}, &r)
}

// RecordUsage appends usage events through the service and returns once they
// are durable in the stream. It validates on the server and refuses the
// whole request on any bad event. For volume, use a Producer.
func (c *Client) RecordUsage(ctx context.Context, evs ...events.Event) (*api.RecordUsageReply, error) {
	// Each tenant's events go to its own partition's owner, in the order
	// the tenants first appear; the reply adds their counts up.
	var (
		order    []string
		byTenant = map[string][]events.Event{}
	)
	for _, ev := range evs {
		if _, ok := byTenant[ev.Tenant]; !ok {
			order = append(order, ev.Tenant)
		}
		byTenant[ev.Tenant] = append(byTenant[ev.Tenant], ev)
	}
	if len(order) == 0 {
		return nil, &events.Error{Code: events.CodeInvalidArgument, Message: "no events"}
	}
	var total api.RecordUsageReply
	for _, t := range order {
		var r api.RecordUsageReply
		if err := c.callFor(ctx, api.SubjectRecordUsage, t, byTenant[t], &r); err != nil {
			return &total, err
		}
		total.Events += r.Events
		total.Seq = max(total.Seq, r.Seq)
	}
	return &total, nil
}
