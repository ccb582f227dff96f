package deploy_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/events"
)

const natsConf = "nats/nats.conf"

// The compose cluster's servers map tenant-addressed requests to partitions
// with exactly the mappings the ledger's code declares.
func TestNATSConfHasThePartitionMappings(t *testing.T) {
	m, err := conf.ParseFile(natsConf)
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := m["mappings"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no top-level mappings block (the global account's), got %T", natsConf, m["mappings"])
	}
	got := map[string]string{}
	for k, v := range raw {
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s: mapping %q is a %T, want one destination string", natsConf, k, v)
		}
		got[k] = s
	}
	if want := api.PartitionMappings(); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s mappings differ from api.PartitionMappings():\n got %q\nwant %q", natsConf, got, want)
	}
}

// A server started from the file (its cluster and JetStream left out, which
// need the compose network) routes ledger.v1.<op>.<tenant> to the subject
// the owner of the tenant's partition subscribes to.
func TestNATSConfRoutesTenantsToTheirPartitions(t *testing.T) {
	opts, err := server.ProcessConfigFile(natsConf)
	if err != nil {
		t.Fatal(err)
	}
	if opts.ServerName != "" || opts.Cluster.Name != "ledger" || len(opts.Routes) != 3 || !opts.JetStream || opts.HTTPPort != 8222 || opts.Port != 4222 {
		t.Errorf("%s: server_name %q (want none: --name per node), cluster %q with %d routes, jetstream %v, ports %d/%d",
			natsConf, opts.ServerName, opts.Cluster.Name, len(opts.Routes), opts.JetStream, opts.Port, opts.HTTPPort)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster, opts.Routes, opts.JetStream = server.ClusterOpts{}, nil, false
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	for _, op := range []string{api.SubjectCheck, api.SubjectQuotaSet} {
		for p := 0; p < events.Partitions; p++ {
			p := p
			sub, err := nc.Subscribe(api.PartitionSubject(op, p), func(m *nats.Msg) {
				m.Respond([]byte(fmt.Sprintf("%d %s", p, m.Subject)))
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
		}
	}
	tenants := map[string]int{"acme": 15, "globex": 14, "initech": 1} // the figures
	for i := 0; i < 200; i++ {
		tenants[fmt.Sprintf("tenant-%d", i)] = -1
	}
	seen := map[int]bool{}
	for tenant, want := range tenants {
		if want < 0 {
			want = events.Partition(tenant)
		} else if got := events.Partition(tenant); got != want {
			t.Errorf("events.Partition(%q) = %d, want %d", tenant, got, want)
		}
		seen[want] = true
		for _, op := range []string{api.SubjectCheck, api.SubjectQuotaSet} {
			subject := api.TenantSubject(op, tenant)
			m, err := nc.Request(subject, nil, 2*time.Second)
			if err != nil {
				t.Fatalf("%s: %v", subject, err)
			}
			ledgerOp := op[len(api.SubjectPrefix):]
			if got, want := string(m.Data), fmt.Sprintf("%d %s.%d%s.%s", want, api.PartitionPrefix, want, ledgerOp, tenant); got != want {
				t.Errorf("%s answered as %q, want %q", subject, got, want)
			}
		}
	}
	if len(seen) != events.Partitions {
		t.Errorf("tenants reached %d partitions, want all %d", len(seen), events.Partitions)
	}
}
