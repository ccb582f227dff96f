package projections

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// comparerName is stored by Pebble: a store written with another comparer
// (the default one, before this existed) refuses to open, because its bloom
// filters were built over other key prefixes. Never change it without a new
// name and a rebuild.
const comparerName = "ledger.limitprefix.v1"

// keyComparer orders keys bytewise, like Pebble's default comparer, but
// splits a counter key into its limit (the prefix: tenant, quota, epoch,
// split and limit) and its bucket and u/r byte (the suffix). Pebble builds
// its bloom filters over prefixes, so a read of one limit's buckets with
// SeekPrefixGE skips every table that holds nothing of that limit, as a point
// read skips tables without its key. Other keys are all prefix.
//
// Every byte string is a valid key: splitKey parses from the left and stops
// where a limit ends, so no limit is a proper prefix of another and ordering
// by prefix then suffix is the bytewise order (what Pebble requires of
// Split). That is also why the default Separator and Successor, which make up
// shortened keys, stay valid here.
var keyComparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Split = splitKey
	c.ImmediateSuccessor = nil // only for range keys, which the store does not use
	c.Name = comparerName
	return &c
}()

// splitKey returns the length of a key's prefix: up to and including the 0
// after the limit name for a counter key (see keys.go), the whole key for
// anything else, including a counter key cut short.
func splitKey(k []byte) int {
	if len(k) == 0 || k[0] != prefixCounter {
		return len(k)
	}
	n := 1
	// tenant 0 quota 0, then the 4-byte epoch, then split 0 limit 0.
	for part := 0; part < 4; part++ {
		if part == 2 {
			n += 4
			if n > len(k) {
				return len(k)
			}
		}
		i := bytes.IndexByte(k[n:], 0)
		if i < 0 {
			return len(k)
		}
		n += i + 1
	}
	return n
}

// ErrStoreFormat is returned (wrapped) by OpenStore for a store written by a
// build that ordered or filtered keys differently: the projection must be
// rebuilt from the stream.
var ErrStoreFormat = errors.New("projection store format is not this build's")

// checkComparer explains an Open failure caused by a store that another
// comparer wrote. It returns nil when that is not the cause.
func checkComparer(dir string) error {
	desc, err := pebble.Peek(dir, vfs.Default)
	if err != nil || !desc.Exists || desc.OptionsFilename == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.Base(desc.OptionsFilename)))
	if err != nil {
		return nil
	}
	for line := range strings.Lines(string(b)) {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "comparer=")
		if ok && name != comparerName {
			return fmt.Errorf("%w: %s was written with key comparer %q, this build uses %q; rebuild the projection: move the directory away, and the ledger folds the whole stream into a new one when it starts",
				ErrStoreFormat, dir, name, comparerName)
		}
	}
	return nil
}
