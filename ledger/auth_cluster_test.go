package ledger_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// TestPermissionTableOnExternalCluster: the setup docs/SECURITY.md
// describes for an external cluster. Three NATS servers read the
// authorization block `ledger creds config` prints; the ledger and a
// standalone projector sign in with their own roles' keys from the same
// credentials file; the permission table holds there as it does on
// `ledger serve --auth`.
func TestPermissionTableOnExternalCluster(t *testing.T) {
	dir := t.TempDir()
	users := append(slices.Clone(tableUsers),
		auth.User{Name: "ledger-a", Role: auth.RoleLedger},
		auth.User{Name: "projector-1", Role: auth.RoleProjector})
	path, seeds := credentials(t, dir, users)
	f, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "ledger-auth.conf")
	if err := os.WriteFile(conf, []byte(auth.ServerConfig(f)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := ledgertest.StartClusterWith(t, 3, func(o *server.Options) error {
		fromFile, err := server.ProcessConfigFile(conf) // each start reads it, as a node would
		if err != nil {
			return err
		}
		o.Nkeys = fromFile.Nkeys
		return nil
	})
	l := ledgertest.StartLedger(t, ledger.Config{
		NATSURL:     c.URLs(),
		Credentials: auth.Credentials{NKeyFile: seeds["ledger-a"]},
		Stream:      ledger.StreamOptions{Replicas: 3},
		Member:      "ledger-a",
		AuthFile:    path, // against a cluster: who may sign in to the dashboard
		HTTP:        "127.0.0.1:0",
	})

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		stopped <- ledger.RunProjector(ctx, ledger.ProjectorConfig{
			NATSURL: c.URLs(), DataDir: t.TempDir(), Member: "projector-1",
			Credentials: auth.Credentials{NKeyFile: seeds["projector-1"]},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("projector: %v", err)
		}
	})

	url := l.ClientURL()
	seedUsage(t, url, seeds)
	// The projector folds with its role's permissions: the admin sees it
	// caught up with the ledger.
	admin := newClient(t, connectAs(t, url, "admin", seeds["admin"]).nc)
	last := lastSeqOf(t, connectAs(t, url, "auditor", seeds["auditor"]).nc)
	ledgertest.Eventually(t, 30*time.Second, "the projector at the stream's last sequence", func() bool {
		wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer wcancel()
		members, err := admin.Members(wctx, 300*time.Millisecond)
		if err != nil {
			return false
		}
		for _, m := range members {
			if m.Member == "projector-1" && m.AppliedSeq >= last {
				return true
			}
		}
		return false
	})
	runPermissionTable(t, url, seeds)

	// The dashboard asks for a sign-in: the cluster's ledger follows the
	// credentials file for it.
	resp, err := http.Get("http://" + l.HTTPAddr() + "/api/tenants")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the dashboard's tenants without signing in: %s, want 401", resp.Status)
	}
}
