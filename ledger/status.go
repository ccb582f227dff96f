package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
)

// DefaultMemberName names a member that was given no name: its host and a
// hash of its data directory, so two processes on one host differ and a
// restarted one keeps its name.
func DefaultMemberName(dataDir string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "ledger"
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return host + "-" + hex.EncodeToString(sum[:3])
}

// statusResponder answers api.SubjectClusterStatus (every member answers)
// and the member's own status subject.
type statusResponder struct {
	subs []*nats.Subscription
}

// startStatus answers status requests for a member whose projection is
// proj, with the partition states that parts returns. The member is ready
// once its projection has reached the stream's last sequence as it was at
// start.
func startStatus(ctx context.Context, nc *nats.Conn, stream jetstream.Stream, proj *projections.Projector, member, role string, parts func() []api.PartitionStatus) (*statusResponder, error) {
	target, err := LastSeqOf(ctx, stream, proj.Filters())
	if err != nil {
		return nil, fmt.Errorf("read the stream's last sequence: %w", err)
	}
	handle := func(m *nats.Msg) {
		st := api.MemberStatus{Member: member, Role: role, AppliedSeq: proj.Applied(), Partitions: parts()}
		if st.Partitions == nil {
			st.Partitions = []api.PartitionStatus{}
		}
		st.Ready = st.AppliedSeq >= target
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if info, err := stream.Info(ctx); err == nil {
			st.StreamSeq = info.State.LastSeq
		}
		// Lag counts only what this member folds: other partitions'
		// messages are none of its business.
		if mine, err := LastSeqOf(ctx, stream, proj.Filters()); err == nil && mine > st.AppliedSeq {
			st.Lag = mine - st.AppliedSeq
		}
		b, _ := json.Marshal(st)
		_ = m.Respond(b)
	}
	r := &statusResponder{}
	for _, subj := range []string{api.SubjectClusterStatus, api.MemberStatusSubject(member)} {
		sub, err := nc.Subscribe(subj, handle)
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("subscribe %s: %w", subj, err)
		}
		r.subs = append(r.subs, sub)
	}
	return r, nil
}

func (r *statusResponder) stop() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
}

// checkPartitionMappings makes sure the NATS server routes tenant-addressed
// requests to partition subjects (api.PartitionMappings): without the
// mappings nothing would ever reach an owner, and every request would time
// out with no hint why. It sends a probe of each length through the server
// and looks where it arrives.
func checkPartitionMappings(nc *nats.Conn) error {
	tenant := "probe" + nuid.Next()
	for _, op := range []string{api.SubjectPrefix + ".mapcheck", api.SubjectPrefix + ".mapcheck.op"} {
		arrived := make(chan string, 2)
		var subs []*nats.Subscription
		for _, subj := range []string{
			api.PartitionSubject(op, events.Partition(tenant)), // mapped, to the right partition
			api.TenantSubject(op, tenant),                      // not mapped
		} {
			sub, err := nc.Subscribe(subj, func(m *nats.Msg) { arrived <- m.Subject })
			if err != nil {
				return err
			}
			subs = append(subs, sub)
		}
		err := nc.Flush()
		if err == nil {
			err = nc.Publish(api.TenantSubject(op, tenant), nil)
		}
		var where string
		if err == nil {
			select {
			case where = <-arrived:
			case <-time.After(5 * time.Second):
				// Mapped to another partition than events.Partition says.
			}
		}
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
		if err != nil {
			return fmt.Errorf("check partition mappings: %w", err)
		}
		if !strings.HasPrefix(where, api.PartitionPrefix+".") {
			return fmt.Errorf("the NATS server does not map %s.<op>.<tenant> to the partitions' subjects; add to every server's configuration: %s", api.SubjectPrefix, MappingsConfig())
		}
	}
	return nil
}

// MappingsConfig is api.PartitionMappings as a nats-server configuration
// block.
func MappingsConfig() string {
	m := api.PartitionMappings()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("mappings { ")
	for _, k := range keys {
		fmt.Fprintf(&b, "%q: %q ", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}
