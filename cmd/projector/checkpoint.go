package main

import (
	"context"
	"fmt"

	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

// checkpoint: a Pebble checkpoint of a projection with its applied sequence
// and digest, to rebuild from later instead of from sequence 1.
func checkpointCmd(_ context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var dir, out string
	fs.StringVar(&dir, "data", "", "projection directory (its projector stopped)")
	fs.StringVar(&out, "out", "", "checkpoint directory to create")
	if err := call.Parse(args); err != nil {
		return err
	}
	if dir == "" || out == "" {
		return cli.Usagef("--data and --out are required")
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{MustExist: true})
	if err != nil {
		return err
	}
	defer store.Close()
	info, err := replay.Checkpoint(store, out, projections.StoreOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(call.Stdout, "checkpoint %s at applied_seq %d, digest sha256:%s\n", out, info.Applied, info.Digest)
	return nil
}
