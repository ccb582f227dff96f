package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
)

// digest: the state digest of a projection at its applied sequence.
func digestCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("digest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dir, format string
	fs.StringVar(&dir, "data", "", "projection directory (its projector stopped: Pebble lets one process open it)")
	fs.StringVar(&format, "format", "text", "text or json (with a digest per entry kind)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if dir == "" {
		return errors.New("digest: --data is required")
	}
	store, err := projections.OpenStore(dir, projections.StoreOptions{})
	if err != nil {
		return err
	}
	defer store.Close()
	d, err := replay.DigestStore(store)
	if err != nil {
		return err
	}
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
