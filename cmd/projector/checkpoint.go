package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

// checkpoint: a Pebble checkpoint of a projection with its applied sequence
// and digest, to rebuild from later instead of from sequence 1.
func checkpointCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dir, out string
	fs.StringVar(&dir, "data", "", "projection directory (its projector stopped)")
	fs.StringVar(&out, "out", "", "checkpoint directory to create")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dir == "" || out == "" {
		return errors.New("checkpoint: --data and --out are required")
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		return err
	}
	defer store.Close()
	info, err := replay.Checkpoint(store, out, projections.StoreOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checkpoint %s at applied_seq %d, digest sha256:%s\n", out, info.Applied, info.Digest)
	return nil
}
