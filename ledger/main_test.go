package ledger_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/ledgerworks/ledger/ledger"
)

// Environment variables that turn the test binary into a child process, so
// crash tests can kill a real process with SIGKILL.
const (
	envRole = "LEDGER_TEST_ROLE"
	envURL  = "LEDGER_TEST_NATS_URL"
	envData = "LEDGER_TEST_DATA"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "projector" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		err := ledger.RunProjector(ctx, ledger.ProjectorConfig{NATSURL: os.Getenv(envURL), DataDir: os.Getenv(envData)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "projector:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
