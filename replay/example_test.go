package replay_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/replay"
)

// An auditor's program: bill March 2026 in Berlin time, per tenant, model and
// day, straight from the stream, with read-only credentials.
func ExampleBuildReport() {
	ctx := context.Background()
	nc, js, err := replay.Dial(replay.DialOptions{URL: "nats://auditor:secret@ledger.example:4222", Name: "march-billing"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	be, err := events.LoadZone("Europe/Berlin")
	if err != nil {
		log.Fatal(err)
	}
	rep, err := replay.BuildReport(ctx, src, replay.ReportOptions{
		From: time.Date(2026, 3, 1, 0, 0, 0, 0, be), To: time.Date(2026, 4, 1, 0, 0, 0, 0, be),
		Location: be, GroupBy: []string{"tenant", "model", "day"},
		Progress: replay.NewProgress(os.Stderr, "march", replay.ProgressAuto),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := rep.WriteCSV(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// Rebuild a projection from the stream and compare its digest with a
// digest published by the operator for the same sequence.
func ExampleRebuild() {
	ctx := context.Background()
	nc, js, err := replay.Dial(replay.DialOptions{URL: "nats://auditor:secret@ledger.example:4222"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	src, err := replay.NewStreamSource(js, replay.StreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := replay.Rebuild(ctx, src, replay.RebuildOptions{Dir: "./rebuilt", Fold: replay.FoldOptions{Through: 1_000_000}})
	if err != nil {
		log.Fatal(err) // run it again: it resumes from what ./rebuilt holds
	}
	log.Printf("digest %s", res.Digest)
}
