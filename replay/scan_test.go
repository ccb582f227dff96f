package replay_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/events"
	"github.com/ledgerworks/ledger/projections"
	"github.com/ledgerworks/ledger/replay"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

// The scanner (reports, totals audits, what-if) and the projector's Apply
// (live, rebuilds, state audits, at) take and refuse exactly the same
// events: a generated history with misplaced events, other tenants' events
// and invalid ones, plus messages on another partition's subject and on an
// unknown class.
func TestScannerRefusesWhatTheProjectorRefuses(t *testing.T) {
	bs := rt.Generate(rt.GenOptions{Seed: 3, Events: 20_000, Tenants: 4, Start: time.Date(2026, 3, 28, 22, 0, 0, 0, time.UTC)})
	at := time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)
	stray := rt.Batch{Tenant: "t00", Class: events.ClassUsage, Events: []events.Event{
		events.New("stray-1", "t00", at, rt.Who("ana", "gpt-4o"), &events.UsageRecorded{Amounts: events.Amounts{Tokens: 5, Requests: 1}})}}
	var msgs []replay.Message
	add := func(subject string, b rt.Batch) {
		data, err := events.EncodeBatch(b.Events)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, replay.Message{Message: projections.Message{Seq: uint64(len(msgs) + 1), Subject: subject, Data: data}, Time: at})
	}
	for i, b := range bs {
		add(events.Subject(b.Tenant, b.Class), b)
		if i == len(bs)/2 {
			add("ledger.ev."+strconv.Itoa((events.Partition("t00")+1)%events.Partitions)+".t00.usage", stray)
			add("ledger.ev."+strconv.Itoa(events.Partition("t00"))+".t00.billing", stray)
		}
	}

	sc := replay.NewScanner()
	accepted := map[string]bool{}
	misplaced := map[string]int{} // by subject class
	for i := range msgs {
		sc.Scan(&msgs[i], func(r *replay.Record) {
			switch {
			case r.Status == replay.Accepted:
				accepted[r.Event.Tenant+"/"+r.Event.ID] = true
			case errors.Is(r.Err, events.ErrMisplaced) && events.ClassOf(r.Event.Type) != r.Class:
				misplaced[r.Class]++
			}
		})
	}
	for _, class := range []string{events.ClassUsage, events.ClassAdmin, events.ClassDecision} {
		if misplaced[class] == 0 {
			t.Errorf("the history has no event misplaced on a %s subject: %v", class, misplaced)
		}
	}
	if len(sc.Refused) != 2 || sc.Refused[0].Subject != msgs[len(bs)/2+1].Subject || sc.Refused[1].Subject != msgs[len(bs)/2+2].Subject {
		t.Fatalf("refused %+v, want the messages on another partition and on an unknown class", sc.Refused)
	}

	store, err := projections.OpenStore(filepath.Join(t.TempDir(), "p"), projections.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := projections.NewProjector(nil, store, projections.ProjectorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Fold(rt.Ctx(t, 60*time.Second), &replay.MemorySource{Messages: msgs, Batch: 97}, p, replay.FoldOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.Applied() != uint64(len(msgs)) {
		t.Fatalf("applied %d of %d", p.Applied(), len(msgs))
	}
	if got, want := p.Rejected(), uint64(sc.Rejected)+uint64(len(sc.Refused)); got != want {
		t.Errorf("projector rejected %d, scanner %d events and %d messages", got, sc.Rejected, len(sc.Refused))
	}
	seen := map[string]bool{}
	err = store.Scan(func(e *projections.Entry) error {
		if e.Kind == projections.EntrySeen {
			seen[e.Tenant+"/"+e.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(accepted) {
		t.Errorf("projector folded %d events, scanner accepted %d", len(seen), len(accepted))
	}
	for k := range accepted {
		if !seen[k] {
			t.Errorf("%s accepted by the scanner, not folded by the projector", k)
		}
	}
	if seen["t00/stray-1"] {
		t.Error("usage on another partition's subject or an unknown class was folded")
	}
}
