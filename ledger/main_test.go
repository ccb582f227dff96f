package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"

	"github.com/ledgerworks/ledger/cluster"
	"github.com/ledgerworks/ledger/ledger"
)

// Environment variables that turn the test binary into a child process, so
// crash tests can kill a real process with SIGKILL.
const (
	envRole    = "LEDGER_TEST_ROLE"
	envURL     = "LEDGER_TEST_NATS_URL"
	envData    = "LEDGER_TEST_DATA"
	envListen  = "LEDGER_TEST_LISTEN"
	envMember  = "LEDGER_TEST_MEMBER"
	envOwns    = "LEDGER_TEST_OWNS"
	envStandby = "LEDGER_TEST_STANDBY"
	// envReplicas, when set, is the ledger's Stream.Replicas (a cluster's R3).
	envReplicas = "LEDGER_TEST_REPLICAS"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "projector" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		err := ledger.RunProjector(ctx, ledger.ProjectorConfig{NATSURL: os.Getenv(envURL), DataDir: os.Getenv(envData), Member: os.Getenv(envMember)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "projector:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(envRole) == "ledger" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		cfg := ledger.Config{DataDir: os.Getenv(envData), Listen: os.Getenv(envListen), NATSURL: os.Getenv(envURL), Member: os.Getenv(envMember), Durability: ledger.SyncPeriodic, Logger: log}
		var err error
		if cfg.Assignment.Owns, err = cluster.ParsePartitions(os.Getenv(envOwns)); err == nil {
			cfg.Assignment.Standby, err = cluster.ParsePartitions(os.Getenv(envStandby))
		}
		if r := os.Getenv(envReplicas); r != "" && err == nil {
			cfg.Stream.Replicas, err = strconv.Atoi(r)
		}
		var l *ledger.Ledger
		if err == nil {
			l, err = ledger.Start(ctx, cfg)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "ledger:", err)
			os.Exit(1)
		}
		<-ctx.Done()
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "ledger:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startChild runs the test binary as a child process in a role (see
// TestMain), so a test can kill it for real; it is killed at cleanup if the
// test has not reaped it.
func startChild(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envRole+"="+role), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}
