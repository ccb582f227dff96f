package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/metrics"
	"github.com/ledgerworks/ledger/projections"
)

// ServiceOptions configure the request/reply service. The zero value is
// usable.
type ServiceOptions struct {
	// MaxSkew is how far an event's time may be from the ledger clock
	// (default 5 minutes).
	MaxSkew time.Duration
	// Now is the ledger clock (default time.Now). Deciding is the only
	// place the clock enters.
	Now func() time.Time
	// WaitTimeout bounds how long a request waits for the stream or the
	// projection (default 5 s).
	WaitTimeout time.Duration
	// MaxInFlight bounds requests handled at once (default 1024).
	MaxInFlight int
	// Metrics count checks and decisions (nil: not counted).
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

func (o ServiceOptions) withDefaults() ServiceOptions {
	if o.MaxSkew <= 0 {
		o.MaxSkew = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 5 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Service answers the ledger's requests for the partitions this process
// owns. For each owned partition it runs one instance of the NATS micro
// service "ledger" whose endpoints listen on that partition's subjects
// (api.PartitionSubject), so `nats micro info ledger` lists who serves
// which partition; a partition given up stops its instance.
type Service struct {
	opts   ServiceOptions
	app    *Appender
	proj   *projections.Projector
	dec    *decider
	nc     *nats.Conn
	sem    chan struct{}
	wg     sync.WaitGroup
	member string

	denials *denialLog // the latest denials, for the dashboard (denials.go)

	mu    sync.Mutex
	parts map[int]micro.Service
	// replies holds *[]byte: buffers the write handlers encode their
	// replies into, reused once published (a publish copies the body).
	replies sync.Pool
}

// endpoint is one operation of the service.
type endpoint struct {
	name, subject string
	write         bool
	h             func(ctx context.Context, in request) (any, error)
}

// request is what a handler gets: the body, its encoding, and the tenant
// the subject names.
type request struct {
	enc    api.Encoding
	data   []byte
	tenant string
}

// NewService returns the service of member on nc: writes go through app,
// reads come from proj. It answers nothing until Serve.
func NewService(nc *nats.Conn, app *Appender, proj *projections.Projector, member string, opts ServiceOptions) (*Service, error) {
	opts = opts.withDefaults()
	s := &Service{opts: opts, app: app, proj: proj, nc: nc, member: member, sem: make(chan struct{}, opts.MaxInFlight), parts: map[int]micro.Service{}}
	st, err := app.js.Stream(context.Background(), events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("ledger stream: %w", err)
	}
	// The fence and read-your-writes must see every acknowledged append.
	st = ReadFromLeader(app.js, st)
	s.dec = newDecider(app, proj, st, opts.Now, opts.WaitTimeout, opts.Logger)
	s.dec.metrics = opts.Metrics
	s.denials = newDenialLog()
	return s, nil
}

func (s *Service) endpoints() []endpoint {
	return []endpoint{
		{"check", api.SubjectCheck, false, s.check},
		{"usage_get", api.SubjectUsage, false, s.usage},
		{"quota_get", api.SubjectQuotaGet, false, s.quotaGet},
		{"quota_list", api.SubjectQuotaList, false, s.quotaList},
		{"usage_record", api.SubjectRecordUsage, true, s.recordUsage},
		{"quota_set", api.SubjectQuotaSet, true, s.quotaSet},
		{"quota_delete", api.SubjectQuotaDelete, true, s.quotaDelete},
		{"consume", api.SubjectConsume, true, s.consume},
		{"reserve", api.SubjectReserve, true, s.reserve},
		{"reconcile", api.SubjectReconcile, true, s.reconcile},
		{"release", api.SubjectRelease, true, s.release},
		{"batch", api.SubjectBatch, true, s.batch},
		{"retry_signal", api.SubjectRetrySignal, true, s.retrySignal},
		{"retry_clear", api.SubjectRetryClear, true, s.retryClear},
		{"retry_get", api.SubjectRetryGet, false, s.retryGet},
		{"workflow_begin", api.SubjectWorkflowBegin, true, s.workflowBegin},
		{"workflow_step", api.SubjectWorkflowStep, true, s.workflowStep},
		{"workflow_end", api.SubjectWorkflowEnd, true, s.workflowEnd},
		{"workflow_list", api.SubjectWorkflowList, false, s.workflowList},
		{"limit_action", api.SubjectLimitAction, true, s.limitAction},
		{"plan_set", api.SubjectPlanSet, true, s.planSet},
		{"plan_get", api.SubjectPlanGet, false, s.planGet},
		{"counter_reset", api.SubjectCounterReset, true, s.counterReset},
	}
}

// Serve starts answering the requests of partition p, as its owner since
// epoch.
func (s *Service) Serve(p int, epoch uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.parts[p]; ok {
		return nil
	}
	svc, err := micro.AddService(s.nc, micro.Config{
		Name:        api.ServiceName,
		Version:     api.ServiceVersion,
		Description: "usage ledger: quota checks, reservations and usage over an event stream",
		Metadata:    map[string]string{"member": s.member, "partition": strconv.Itoa(p), "epoch": strconv.FormatUint(epoch, 10)},
	})
	if err != nil {
		return fmt.Errorf("add micro service: %w", err)
	}
	for _, ep := range s.endpoints() {
		eh := s.noteDenials(ep.name, s.instrument(ep.name, ep.h))
		h := s.readHandler(p, eh)
		if ep.write {
			h = s.handler(p, eh)
		}
		if err := svc.AddEndpoint(ep.name, h, micro.WithEndpointSubject(api.PartitionSubject(ep.subject, p))); err != nil {
			svc.Stop()
			return fmt.Errorf("add endpoint %s: %w", ep.name, err)
		}
	}
	// A round trip to the server proves it has registered every endpoint's
	// subscription: without it a client that connects right after Serve
	// can be told nobody answers.
	if err := s.nc.FlushTimeout(10 * time.Second); err != nil {
		svc.Stop()
		return fmt.Errorf("register endpoints: %w", err)
	}
	s.parts[p] = svc
	return nil
}

// Unserve stops answering for partition p. Requests already taken are
// still answered.
func (s *Service) Unserve(p int) {
	s.mu.Lock()
	svc, ok := s.parts[p]
	delete(s.parts, p)
	s.mu.Unlock()
	if ok {
		if err := svc.Stop(); err != nil {
			s.opts.Logger.Debug("stop partition service", "partition", p, "err", err)
		}
	}
}

// Requests returns how many requests the service has taken for each
// partition it serves, since it began serving it.
func (s *Service) Requests() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.parts))
	for p, svc := range s.parts {
		for _, ep := range svc.Stats().Endpoints {
			out[p] += ep.NumRequests
		}
	}
	return out
}

// Serving reports whether the service answers for partition p.
func (s *Service) Serving(p int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.parts[p]
	return ok
}

// SweepExpiries expires reservations past their TTL until ctx is done.
func (s *Service) SweepExpiries(ctx context.Context, every time.Duration) {
	s.dec.sweepExpiries(ctx, every, s.Serving)
}

// Stop drains the service's subscriptions and waits for the requests in
// flight.
func (s *Service) Stop() {
	s.mu.Lock()
	ps := make([]int, 0, len(s.parts))
	for p := range s.parts {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		s.Unserve(p)
	}
	s.wg.Wait()
}

// handler adapts a typed handler and encodes the reply or the typed error in
// the request's encoding. Reads run on the endpoint's own goroutine: they
// never block, so this saves a goroutine, its stack growth and a wake-up per
// request (a read that would have to wait for the projection says so with
// errWouldWait and is run again like a write). Writes run each on a goroutine
// of their own (bounded), so one slow append never holds up other callers;
// their replies are published on the service's connection, not through the
// micro request, whose state micro reads once the handler returns, and are
// encoded into pooled buffers.
func (s *Service) handler(p int, h func(context.Context, request) (any, error)) micro.HandlerFunc {
	return func(req micro.Request) {
		s.sem <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			in, err := requestOf(p, req)
			var reply any
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), s.opts.WaitTimeout)
				reply, err = h(ctx, in)
				cancel()
			}
			bp, _ := s.replies.Get().(*[]byte)
			if bp == nil {
				bp = new([]byte)
			}
			*bp = s.respond(req, in.enc, reply, err, false, (*bp)[:0])
			if cap(*bp) <= maxReplyBuffer {
				s.replies.Put(bp)
			}
		}()
	}
}

// readHandler is handler for reads: see handler.
func (s *Service) readHandler(p int, h func(context.Context, request) (any, error)) micro.HandlerFunc {
	async := s.handler(p, h)
	// The endpoint's goroutine runs its reads one at a time and a publish
	// copies the body, so one buffer serves every reply of the endpoint.
	var buf []byte
	return func(req micro.Request) {
		in, err := requestOf(p, req)
		var reply any
		if err == nil {
			reply, err = h(inlineCtx, in)
		}
		if errors.Is(err, errWouldWait) {
			async(req)
			return
		}
		buf = s.respond(req, in.enc, reply, err, true, buf[:0])
		if cap(buf) > maxReplyBuffer {
			buf = nil // one huge reply (a long quota list) is not kept
		}
	}
}

// requestOf reads the tenant from a request's subject, the last token, and
// checks that it belongs to partition p: a request published straight to
// another partition's subject is refused, not answered from state this
// process may not hold.
func requestOf(p int, req micro.Request) (request, error) {
	in := request{enc: api.Detect(req.Data()), data: req.Data(), tenant: api.TenantOfSubject(req.Subject())}
	if err := requireTenant(in.tenant); err != nil {
		return in, err
	}
	if tp := events.Partition(in.tenant); tp != p {
		return in, &events.Error{Code: events.CodeInvalidArgument,
			Message: fmt.Sprintf("tenant %s is in partition %d, not %d: address requests to %s.%s", in.tenant, tp, p, api.SubjectPrefix+".<op>", in.tenant),
			Details: map[string]any{"tenant": in.tenant, "partition": tp, "subject": req.Subject()}}
	}
	return in, nil
}

// bindTenant makes a request's tenant field the subject's tenant: an empty
// field takes it, another tenant is refused, so a payload never overrides
// the subject a request was (and, with permissions, may be) sent on.
func bindTenant(field *string, tenant string) error {
	switch *field {
	case tenant:
		return nil
	case "":
		*field = tenant
		return nil
	}
	return &events.Error{Code: events.CodeInvalidArgument,
		Message: fmt.Sprintf("tenant: the request names %q but was sent for %q", *field, tenant),
		Details: map[string]any{"field": "tenant", "tenant": *field, "subject_tenant": tenant}}
}

// maxReplyBuffer bounds the reply buffers kept for reuse.
const maxReplyBuffer = 64 << 10

// inlineCtx marks a read run on the endpoint's goroutine, where waiting is
// not allowed: see handler.
var inlineCtx = context.WithValue(context.Background(), inlineKey{}, true)

type inlineKey struct{}

var errWouldWait = errors.New("the read has to wait for the projection")

// respond sends the reply, or the error with its micro status. sync says
// the handler has not returned yet, so the micro request may be used. The
// reply is encoded into buf (may be nil), returned for reuse.
func (s *Service) respond(req micro.Request, enc api.Encoding, reply any, err error, sync bool, buf []byte) []byte {
	if a, ok := reply.(*checkAnswer); ok {
		defer a.release()
		reply = &a.CheckReply
	}
	var b []byte
	if err == nil {
		b, err = api.AppendEncode(buf, enc, reply)
	}
	if err != nil {
		s.respondError(req, enc, err, sync)
		return buf
	}
	if sync {
		err = req.Respond(b)
	} else {
		err = s.nc.Publish(req.Reply(), b)
	}
	if err != nil {
		s.opts.Logger.Debug("respond", "err", err)
	}
	return b
}

// statusOf maps a code to the micro error status shown by the nats CLI.
func statusOf(c events.Code) string {
	switch c {
	case events.CodeMalformed, events.CodeInvalidArgument, events.CodeUnknownEventType, events.CodeClockSkew:
		return "400"
	case events.CodeNotFound:
		return "404"
	case events.CodeConflict:
		return "409"
	case events.CodeTooLarge:
		return "413"
	case events.CodeQuotaExceeded, events.CodeRetryLater, events.CodeWorkflowLimit, events.CodeStepLimit:
		return "429"
	case events.CodeUnavailable:
		return "503"
	}
	return "500"
}

func (s *Service) respondError(req micro.Request, enc api.Encoding, err error, sync bool) {
	e := events.AsError(err)
	if e.Code == events.CodeInternal {
		s.opts.Logger.Error("request failed", "subject", req.Subject(), "err", err)
	}
	b, mErr := api.Encode(enc, api.ErrorReply{Error: e})
	if mErr != nil {
		b = nil
	}
	if sync {
		err = req.Error(statusOf(e.Code), e.Message, b)
	} else {
		// What req.Error sends, without touching the micro request.
		err = s.nc.PublishMsg(&nats.Msg{Subject: req.Reply(), Data: b, Header: nats.Header{
			micro.ErrorHeader: []string{e.Message}, micro.ErrorCodeHeader: []string{statusOf(e.Code)},
		}})
	}
	if err != nil {
		s.opts.Logger.Debug("respond error", "err", err)
	}
}

func requireTenant(t string) error {
	if t == "" {
		return &events.Error{Code: events.CodeInvalidArgument, Message: "tenant: missing", Details: map[string]any{"field": "tenant"}}
	}
	if !events.ValidTenant(t) {
		return &events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("tenant: %q cannot be a subject token", t), Details: map[string]any{"field": "tenant"}}
	}
	return nil
}

// decodeRead decodes a read request, binds its tenant and waits until the
// projection covers its after_seq.
func decodeRead[T any](ctx context.Context, s *Service, in request, key func(*T) (*string, uint64)) (*T, error) {
	req, err := decodeTenant(in, func(r *T) *string { t, _ := key(r); return t })
	if err != nil {
		return nil, err
	}
	tenant, after := key(req)
	if err := s.waitApplied(ctx, *tenant, after); err != nil {
		return nil, err
	}
	return req, nil
}

// waitApplied makes a read of tenant see at least stream sequence seq: it
// waits until the projection has folded every event of the tenant up to
// seq (a projection of some partitions never folds the others' messages,
// so it may never reach seq itself).
func (s *Service) waitApplied(ctx context.Context, tenant string, seq uint64) error {
	if seq == 0 || s.proj.Applied() >= seq {
		return nil
	}
	if ctx == inlineCtx {
		return errWouldWait
	}
	if last, err := LastSeqOf(ctx, s.dec.stream, []string{TenantFilter(tenant)}); err == nil && last < seq {
		seq = last
	}
	if err := s.proj.WaitApplied(ctx, seq); err != nil {
		return &events.Error{Code: events.CodeUnavailable, Message: fmt.Sprintf("projection has not reached sequence %d yet", seq), Details: map[string]any{"applied_seq": s.proj.Applied(), "after_seq": seq}, Suggestion: "retry shortly"}
	}
	return nil
}

// recordUsage validates every event first and appends only if all are
// valid: bad input changes nothing. Every event is the subject's tenant's.
func (s *Service) recordUsage(ctx context.Context, in request) (any, error) {
	evs, err := events.DecodeBatch(in.data)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, &events.Error{Code: events.CodeInvalidArgument, Message: "no events"}
	}
	now := s.opts.Now()
	for i := range evs {
		ev := &evs[i]
		if ev.Time.IsZero() {
			ev.Time = now.UTC() // an event without a time happened now
		}
		if err := bindTenant(&ev.Tenant, in.tenant); err != nil {
			return nil, withIndex(err, i)
		}
		if err := ev.Validate(); err != nil {
			return nil, withIndex(err, i)
		}
		if events.ClassOf(ev.Type) != events.ClassUsage {
			return nil, withIndex(&events.Error{Code: events.CodeInvalidArgument, Message: fmt.Sprintf("%s cannot be recorded here; use its own request", ev.Type), Details: map[string]any{"type": string(ev.Type)}}, i)
		}
		if err := events.CheckSkew(ev, now, s.opts.MaxSkew); err != nil {
			return nil, withIndex(err, i)
		}
	}
	seq, err := s.app.Append(ctx, in.tenant, events.ClassUsage, evs, nil)
	if err != nil {
		return nil, err
	}
	return api.RecordUsageReply{Events: len(evs), Seq: seq}, nil
}

func withIndex(err error, i int) error {
	e := *events.AsError(err)
	d := map[string]any{"index": i}
	for k, v := range e.Details {
		d[k] = v
	}
	e.Details = d
	return &e
}

// adminEvent builds an event decided by the ledger itself.
func (s *Service) adminEvent(tenant string, p events.Payload) events.Event {
	// nuid.Next locks; a NUID of our own would not, and handlers run
	// concurrently (two admin events could get the same id, and the second
	// would be dropped as a duplicate).
	return events.New(nuid.Next(), tenant, s.opts.Now().UTC(), nil, p)
}

// appendAndApply appends admin events and waits until this instance's
// projection has folded them, so that the caller's next read sees them.
func (s *Service) appendAndApply(ctx context.Context, tenant string, evs ...events.Event) (uint64, error) {
	seq, err := s.app.Append(ctx, tenant, events.ClassAdmin, evs, nil)
	if err != nil {
		return 0, err
	}
	return seq, s.waitApplied(ctx, tenant, seq)
}

func (s *Service) quotaSet(ctx context.Context, in request) (any, error) {
	req, err := decodeTenant(in, func(r *api.QuotaSetRequest) *string { return &r.Tenant })
	if err != nil {
		return nil, err
	}
	ev := s.adminEvent(req.Tenant, &events.QuotaSet{Quota: req.Quota})
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	seq, err := s.appendAndApply(ctx, req.Tenant, ev)
	if err != nil {
		return nil, err
	}
	reply, err := s.readQuota(req.Tenant, req.Quota.ID)
	if err != nil {
		return nil, err
	}
	reply.Seq = seq
	return reply, nil
}

func (s *Service) quotaDelete(ctx context.Context, in request) (any, error) {
	req, err := decodeRead(ctx, s, in, func(r *api.QuotaRequest) (*string, uint64) { return &r.Tenant, r.AfterSeq })
	if err != nil {
		return nil, err
	}
	if _, err := s.readQuota(req.Tenant, req.ID); err != nil {
		return nil, err
	}
	ev := s.adminEvent(req.Tenant, &events.QuotaDeleted{Quota: req.ID})
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	seq, err := s.appendAndApply(ctx, req.Tenant, ev)
	if err != nil {
		return nil, err
	}
	return api.WriteReply{Seq: seq}, nil
}

func (s *Service) readQuota(tenant, id string) (api.QuotaReply, error) {
	var reply api.QuotaReply
	err := s.proj.View(tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		qs, ok := t.Quotas[id]
		if !ok {
			return &events.Error{Code: events.CodeNotFound, Message: fmt.Sprintf("tenant %s has no quota %q", tenant, id), Details: map[string]any{"tenant": tenant, "quota": id}}
		}
		reply = api.QuotaReply{Quota: qs.Quota, Since: qs.Since}
		return nil
	})
	return reply, err
}

func (s *Service) quotaGet(ctx context.Context, in request) (any, error) {
	req, err := decodeRead(ctx, s, in, func(r *api.QuotaRequest) (*string, uint64) { return &r.Tenant, r.AfterSeq })
	if err != nil {
		return nil, err
	}
	return s.readQuota(req.Tenant, req.ID)
}

func (s *Service) quotaList(ctx context.Context, in request) (any, error) {
	req, err := decodeRead(ctx, s, in, func(r *api.TenantRequest) (*string, uint64) { return &r.Tenant, r.AfterSeq })
	if err != nil {
		return nil, err
	}
	reply := api.QuotaListReply{Quotas: []api.QuotaReply{}}
	err = s.proj.View(req.Tenant, func(t *projections.Tenant, _ projections.Counters, _ uint64) error {
		for _, id := range t.QuotaIDs() {
			qs := t.Quotas[id]
			reply.Quotas = append(reply.Quotas, api.QuotaReply{Quota: qs.Quota, Since: qs.Since})
		}
		return nil
	})
	return reply, err
}

func (s *Service) usage(ctx context.Context, in request) (any, error) {
	req, err := decodeRead(ctx, s, in, func(r *api.TenantRequest) (*string, uint64) { return &r.Tenant, r.AfterSeq })
	if err != nil {
		return nil, err
	}
	tot, applied, err := s.proj.Totals(req.Tenant)
	if err != nil {
		return nil, err
	}
	return api.UsageReply{Tenant: req.Tenant, Totals: tot, AppliedSeq: applied}, nil
}

func (s *Service) check(ctx context.Context, in request) (any, error) {
	// Requests are reused, with their dimensions map: nothing the check
	// answers or notes keeps the request (only strings read from it).
	req := checkRequests.Get().(*api.CheckRequest)
	defer checkRequests.Put(req)
	if err := api.DecodeCheckRequest(in.data, req); err != nil {
		return nil, err
	}
	if err := bindTenant(&req.Tenant, in.tenant); err != nil {
		return nil, err
	}
	now := s.opts.Now()
	// A check is validated like the usage it asks about.
	if err := events.ValidateCall(req.Tenant, req.Dims, req.Groups, &req.Request); err != nil {
		return nil, err
	}
	if err := s.waitApplied(ctx, req.Tenant, req.AfterSeq); err != nil {
		return nil, err
	}
	if err := s.knownProject(req.Tenant, req.Dims); err != nil {
		e := events.AsError(err)
		return api.CheckReply{Code: e.Code, Reason: "unknown_project", Message: e.Message, Limits: []api.LimitStatus{}, AppliedSeq: s.proj.Applied()}, nil
	}
	a := checkAnswers.Get().(*checkAnswer)
	err := s.proj.View(req.Tenant, func(t *projections.Tenant, c projections.Counters, applied uint64) error {
		var buf [len(checkAnswer{}.limits)]projections.LimitStatus
		sts := projections.AppendStatuses(buf[:0], t, c, projections.Call{Dims: req.Dims, Groups: req.Groups, Request: req.Request, Permit: true}, now)
		checkReplyInto(&a.CheckReply, a.limits[:0], a.starts[:0], sts, now)
		a.AppliedSeq = applied
		if err := retryBlock(t, req.Dims, now); err != nil {
			e := events.AsError(err)
			until, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(e.Details["retry_until"]))
			a.Allowed, a.Code, a.Reason, a.Message, a.RetryAfter = false, e.Code, "retry_later", e.Message, e.RetryAfter
			a.RetryUntil = &until
		}
		return nil
	})
	if err != nil {
		a.release()
		return nil, err
	}
	return a, nil
}

// checkAnswer is a check's reply with room for the usual call's limits in
// itself. The service answers a check for every call a metered service
// makes, so answers are reused (checkAnswers) once sent: a check then
// allocates no reply, and the memory it writes is warm in the cache.
type checkAnswer struct {
	api.CheckReply
	limits [4]api.LimitStatus
	starts [4]time.Time
}

var (
	checkAnswers  = sync.Pool{New: func() any { return new(checkAnswer) }}
	checkRequests = sync.Pool{New: func() any { return new(api.CheckRequest) }}
)

// release returns a to checkAnswers: a and its reply must not be used
// after. The service's respond calls it once the reply is encoded, and
// check when it fails before answering.
func (a *checkAnswer) release() {
	a.CheckReply = api.CheckReply{}
	checkAnswers.Put(a)
}

// checkReplyIn is the check reply a handler returned, if it is one.
func checkReplyIn(reply any) (*api.CheckReply, bool) {
	switch r := reply.(type) {
	case *checkAnswer:
		return &r.CheckReply, true
	case api.CheckReply:
		return &r, true
	}
	return nil, false
}

// CheckReplyOf turns limit statuses into a check reply, denied when consume
// or reserve would refuse the same call.
func CheckReplyOf(sts []projections.LimitStatus, now time.Time) api.CheckReply {
	var reply api.CheckReply
	// Window starts in one allocation, not one per limit.
	checkReplyInto(&reply, make([]api.LimitStatus, 0, len(sts)), make([]time.Time, 0, len(sts)), sts, now)
	return reply
}

// checkReplyInto is CheckReplyOf writing into reply, with the limits and
// window starts appended to the buffers given.
func checkReplyInto(reply *api.CheckReply, limits []api.LimitStatus, starts []time.Time, sts []projections.LimitStatus, now time.Time) {
	*reply = api.CheckReply{Allowed: true, Limits: slices.Grow(limits, len(sts))[:len(sts)]}
	starts = slices.Grow(starts, len(sts))[:len(sts)]
	for i := range sts {
		st := &sts[i]
		limitStatusOf(&reply.Limits[i], st, now, &starts[i])
		if st.Warning {
			reply.Warning = true
		}
	}
	worst := worstExceeded(sts) // the same rule as consume and reserve
	if worst != nil {
		e := ExceededError(worst, now)
		reply.Allowed = false
		reply.Code = e.Code
		reply.Reason = DenialReason(worst.Limit.Metric)
		reply.Message = e.Message
		reply.RetryAfter = e.RetryAfter
	}
}

// ExceededError is the quota_exceeded error for a limit.
func ExceededError(st *projections.LimitStatus, now time.Time) *events.Error {
	in := st.ResetsAt.Sub(now)
	if in < 0 {
		in = 0
	}
	e := &events.Error{
		Code: events.CodeQuotaExceeded,
		Message: fmt.Sprintf("%s limit of quota %s exceeded: %d of %d used%s, resets in %s",
			st.Limit.Metric, st.Quota, st.Used+st.Reserved, st.Limit.Max, requestedText(st.Requested), Humanize(in)),
		Details: map[string]any{
			"quota": st.Quota, "metric": string(st.Limit.Metric), "limit": st.Limit.Max,
			"used": st.Used, "reserved": st.Reserved, "requested": st.Requested,
			"remaining": st.Remaining, "resets_at": st.ResetsAt.UTC().Format(time.RFC3339),
		},
		Suggestion: "wait for the window to reset or ask for a higher limit",
	}
	if st.Split != "" {
		e.Details["split"] = st.Split
	}
	e.Details["reason"] = DenialReason(st.Limit.Metric)
	return e.WithRetryAfter(in)
}

func requestedText(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" and %d more asked for", n)
}

// DenialReason maps a denied limit onto seed 000's reasons: a concurrency
// limit is too_many_runs, a limit on the new_run action is runs_hard_limit,
// anything else exceeds_limit (unknown_project comes with not_found).
func DenialReason(m events.Metric) string {
	switch m {
	case events.MetricConcurrent:
		return "too_many_runs"
	case events.ActionMetric("new_run"):
		return "runs_hard_limit"
	}
	return "exceeds_limit"
}

// LimitStatusOf converts a projection status to its wire form.
func LimitStatusOf(st *projections.LimitStatus, now time.Time) api.LimitStatus {
	var out api.LimitStatus
	limitStatusOf(&out, st, now, nil)
	return out
}

// limitStatusOf is LimitStatusOf into *out; the window start, if any, is
// kept in *ws (nil: a new one).
func limitStatusOf(out *api.LimitStatus, st *projections.LimitStatus, now time.Time, ws *time.Time) {
	enf := string(events.Hard)
	if st.Soft {
		enf = string(events.Soft)
	}
	in := st.ResetsAt.Sub(now)
	if in < 0 {
		in = 0
	}
	*out = api.LimitStatus{
		Quota: st.Quota, Split: st.Split, Metric: st.Limit.Metric, Window: st.Limit.Window,
		Enforcement: enf, Limit: st.Limit.Max, Used: st.Used, Reserved: st.Reserved,
		Requested: st.Requested, Remaining: st.Remaining,
		PercentUsed: float64(int64(st.PercentUsed*100+0.5)) / 100,
		Warning:     st.Warning, Exceeded: st.Exceeded,
		ResetsAt: st.ResetsAt.UTC(), ResetsIn: int64((in + time.Second - 1) / time.Second),
	}
	if !st.WindowStart.IsZero() {
		if ws == nil {
			ws = new(time.Time)
		}
		*ws = st.WindowStart.UTC()
		out.WindowStart = ws
	}
}
