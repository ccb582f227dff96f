package replay_test

import (
	"testing"
	"time"

	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

func TestParseTime(t *testing.T) {
	be := berlin(t)
	for in, want := range map[string]string{
		"2026-03-29":                "2026-03-28T23:00:00Z",
		"2026-03-30":                "2026-03-29T22:00:00Z",
		"2026-03-29T03:30":          "2026-03-29T01:30:00Z",
		"2026-10-25T01:59:59":       "2026-10-24T23:59:59Z",
		"2026-10-25T02:30:00+01:00": "2026-10-25T01:30:00Z",
		"2026-01-01T00:00:00Z":      "2026-01-01T00:00:00Z",
	} {
		got, err := replay.ParseTime(in, be)
		if err != nil || !got.Equal(rt.TS(want)) {
			t.Errorf("%s: %v (%v), want %s", in, got.UTC(), err, want)
		}
	}
	for _, in := range []string{"2026-03-29T02:30", "2026-10-25T02:30", "yesterday", "2026-13-01"} {
		if got, err := replay.ParseTime(in, be); err == nil {
			t.Errorf("%s: accepted as %s", in, got)
		}
	}
	if _, err := replay.ParseTime("2026-03-29T02:30", time.UTC); err != nil {
		t.Errorf("UTC has no DST: %v", err)
	}
}
