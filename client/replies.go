package client

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// replies routes the replies to a client's requests to the callers waiting
// for them, over one subscription to the client's own inbox: what
// nats.Conn.RequestWithContext does, but bounded by both the caller's
// context and the client's timeout without deriving a context per request
// (context.WithTimeout costs a timer, a channel and, under a cancellable
// parent, two trips through the parent's lock, shared by every caller).
// Here a request waits on a pooled channel and a pooled timer instead.
type replies struct {
	nc *nats.Conn

	mu      sync.Mutex
	sub     *nats.Subscription // nil until the first request
	prefix  string             // the inbox and a dot: a reply subject is prefix+token
	next    uint64
	waiting map[string]chan *nats.Msg // by token

	chans  sync.Pool // chan *nats.Msg of capacity 1, empty
	timers sync.Pool // *time.Timer, stopped
}

// noResponders is the status of the message the server sends back at once
// when nobody subscribes to a request's subject (as nats.go checks it).
const (
	statusHeader = "Status"
	noResponders = "503"
)

// request publishes body to subject and waits for the reply, for at most
// timeout and as long as ctx allows. Its errors are those of
// nats.Conn.RequestWithContext: nats.ErrNoResponders, nats.ErrTimeout,
// ctx.Err(), or a publish error.
func (r *replies) request(ctx context.Context, subject string, body []byte, timeout time.Duration) (*nats.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reply, token, ch, err := r.register()
	if err != nil {
		return nil, err
	}
	if err := r.nc.PublishRequest(subject, reply, body); err != nil {
		r.forget(token)
		return nil, err
	}
	t, _ := r.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(timeout)
	} else {
		t.Reset(timeout)
	}
	// Since Go 1.23 a stopped timer delivers nothing more: it can be reused.
	defer func() { t.Stop(); r.timers.Put(t) }()
	select {
	case m := <-ch:
		r.chans.Put(ch) // delivered, and no longer in waiting: nothing else is sent to it
		if len(m.Data) == 0 && m.Header.Get(statusHeader) == noResponders {
			return nil, nats.ErrNoResponders
		}
		return m, nil
	case <-ctx.Done():
		r.forget(token) // ch is dropped: a reply may still be on its way into it
		return nil, ctx.Err()
	case <-t.C:
		r.forget(token)
		if r.nc.IsClosed() {
			return nil, nats.ErrConnectionClosed
		}
		return nil, nats.ErrTimeout
	}
}

// register makes a reply subject for a new request and the channel its
// reply will come on; the first request subscribes to the inbox.
func (r *replies) register() (reply, token string, ch chan *nats.Msg, err error) {
	ch, _ = r.chans.Get().(chan *nats.Msg)
	if ch == nil {
		ch = make(chan *nats.Msg, 1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		prefix := r.nc.NewInbox() + "."
		sub, err := r.nc.Subscribe(prefix+"*", r.deliver)
		if err != nil {
			return "", "", nil, err
		}
		r.sub, r.prefix, r.waiting = sub, prefix, map[string]chan *nats.Msg{}
	}
	r.next++
	var buf [96]byte
	reply = string(strconv.AppendUint(append(buf[:0], r.prefix...), r.next, 36))
	token = reply[len(r.prefix):]
	r.waiting[token] = ch
	return reply, token, ch, nil
}

// forget stops waiting for a reply.
func (r *replies) forget(token string) {
	r.mu.Lock()
	delete(r.waiting, token)
	r.mu.Unlock()
}

// deliver hands a reply to its request, if that still waits for it (it may
// have timed out); a second reply to the same request is dropped.
func (r *replies) deliver(m *nats.Msg) {
	r.mu.Lock()
	token, ok := strings.CutPrefix(m.Subject, r.prefix)
	ch := r.waiting[token]
	delete(r.waiting, token)
	r.mu.Unlock()
	if ok && ch != nil {
		ch <- m // capacity 1 and out of waiting: this is the only send
	}
}

// close unsubscribes from the inbox; requests still waiting time out.
func (r *replies) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sub == nil {
		return nil
	}
	err := r.sub.Unsubscribe()
	r.sub, r.waiting = nil, nil
	return err
}
