package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ledgerworks/ledger/internal/cli"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

// digest: the state digest of a projection at its applied sequence.
func digestCmd(_ context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	var dir, format string
	fs.StringVar(&dir, "data", "", "projection directory (its projector stopped: Pebble lets one process open it)")
	fs.StringVar(&format, "format", "text", "text or json (with a digest per entry kind)")
	if err := call.Parse(args); err != nil {
		return err
	}
	if dir == "" {
		return cli.Usagef("--data is required")
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{MustExist: true})
	if err != nil {
		return err
	}
	defer store.Close()
	d, err := replay.DigestStore(store)
	if err != nil {
		return err
	}
	stdout := call.Stdout
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	fmt.Fprintf(stdout, "digest %s\n", d)
	kinds := make([]string, 0, len(d.Kinds))
	for k := range d.Kinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(stdout, "  %-8s %8d entries  sha256:%s\n", k, d.Entries[k], d.Kinds[k])
	}
	return nil
}
