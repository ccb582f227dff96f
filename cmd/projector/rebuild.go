package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/replay"
)

// rebuild: fold the stream into a projection directory, from sequence 1, from
// a checkpoint, or resuming from what the directory holds.
func rebuildCmd(ctx context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var url, stream, parts, ckpt, format string
	var cred auth.Credentials
	var progress replay.ProgressFlags
	var o replay.RebuildOptions
	var batch int
	fs.StringVar(&url, "nats-url", "nats://127.0.0.1:4222", "NATS server holding the ledger stream (read access is enough)")
	cred.RegisterFlags(fs, true)
	fs.StringVar(&stream, "stream", "", "ledger stream (default LEDGER)")
	fs.StringVar(&parts, "partitions", "", "comma-separated partitions (default all; a live projection compares only with one of the same partitions)")
	fs.StringVar(&o.Dir, "data", "", "projection directory: created, or resumed from its applied sequence")
	fs.StringVar(&ckpt, "from-checkpoint", "", "start from this checkpoint (projector checkpoint) instead of sequence 1; --data must not exist")
	fs.Uint64Var(&o.Fold.Through, "to-seq", 0, "last sequence to fold (default: the stream's last when the rebuild starts)")
	fs.IntVar(&batch, "batch", 0, "messages per direct-get batch and per Pebble commit (default 10000)")
	progress.Register(fs)
	fs.StringVar(&format, "format", "text", "text or json")
	if err := call.Parse(args); err != nil {
		return err
	}
	if o.Dir == "" {
		return cli.Usagef("--data is required")
	}
	o.Checkpoint = ckpt
	partitions, err := replay.ParsePartitions(parts)
	if err != nil {
		return cli.Usagef("--partitions: %v", err)
	}
	o.Fold.Progress = progress.New(call.Stdout, call.Stderr, "rebuild")
	nc, js, err := replay.Dial(replay.DialOptions{URL: url, Credentials: cred, Name: "ledger-rebuild"})
	if err != nil {
		return err
	}
	defer nc.Close()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{Stream: stream, Partitions: partitions, Batch: batch})
	if err != nil {
		return err
	}
	res, err := replay.Rebuild(ctx, src, o)
	if err != nil {
		if res != nil && res.Applied > 0 {
			return fmt.Errorf("%w (the projection holds sequences through %d; run the same command again to resume)", err, res.Applied)
		}
		return err
	}
	stdout := call.Stdout
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	how := "from sequence 1"
	switch {
	case res.Checkpoint > 0:
		how = fmt.Sprintf("from checkpoint at %d", res.Checkpoint)
	case res.Resumed:
		how = fmt.Sprintf("resumed at %d", res.From)
	}
	rate := 0.0
	if res.Elapsed > 0 {
		rate = float64(res.Messages) / res.Elapsed.Seconds()
	}
	fmt.Fprintf(stdout, "rebuilt %s %s: %d messages folded in %s (%.0f msg/s)\n", o.Dir, how, res.Messages, res.Elapsed.Round(time.Millisecond), rate)
	fmt.Fprintf(stdout, "digest %s\n", res.Digest)
	return nil
}
