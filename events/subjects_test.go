package events_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/ledgerworks/ledger/events"
)

// A subject parses only when it is one the ledger writes: the tenant's own
// partition, spelled as Subject spells it, a valid tenant and a known class.
func TestParseSubject(t *testing.T) {
	p := strconv.Itoa(events.Partition("acme"))
	other := strconv.Itoa((events.Partition("acme") + 1) % events.Partitions)
	for _, class := range []string{events.ClassUsage, events.ClassDecision, events.ClassAdmin} {
		s := events.Subject("acme", class)
		tenant, got, err := events.ParseSubject(s)
		if err != nil || tenant != "acme" || got != class {
			t.Errorf("ParseSubject(%q) = %q, %q, %v; want acme, %s", s, tenant, got, err, class)
		}
	}
	for _, tc := range []struct{ name, subject, wantIn string }{
		{"another partition", "ledger.ev." + other + ".acme.usage", "partition"},
		{"partition with a leading zero", "ledger.ev.0" + p + ".acme.usage", "partition"},
		{"partition out of range", "ledger.ev." + strconv.Itoa(events.Partition("acme")+events.Partitions) + ".acme.usage", "partition"},
		{"partition not a number", "ledger.ev.x.acme.usage", "partition"},
		{"empty partition", "ledger.ev..acme.usage", "partition"},
		{"unknown class", "ledger.ev." + p + ".acme.usages", "class"},
		{"empty class", "ledger.ev." + p + ".acme.", "class"},
		{"invalid tenant", "ledger.ev.0.ac*me.usage", "tenant"},
		{"too few tokens", "ledger.ev." + p + ".acme", "not a ledger event subject"},
		{"too many tokens", "ledger.ev." + p + ".acme.usage.x", "not a ledger event subject"},
		{"another prefix", "ledger.v1." + p + ".acme.usage", "not a ledger event subject"},
		{"empty", "", "not a ledger event subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tenant, class, err := events.ParseSubject(tc.subject)
			if err == nil {
				t.Fatalf("ParseSubject(%q) = %q, %q; want an error", tc.subject, tenant, class)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not mention %q", err, tc.wantIn)
			}
		})
	}
}

// placedOn lists, by hand rather than from ClassOf, the subject classes an
// event of each type is folded from.
var placedOn = map[events.Type][]string{
	events.TypeUsageRecorded:         {events.ClassUsage, events.ClassDecision}, // a consume is a decision
	events.TypeUsageCorrected:        {events.ClassUsage},
	events.TypeReservationCreated:    {events.ClassDecision},
	events.TypeReservationReconciled: {events.ClassDecision},
	events.TypeReservationReleased:   {events.ClassDecision},
	events.TypeReservationExpired:    {events.ClassDecision},
	events.TypeRetrySignalled:        {events.ClassDecision},
	events.TypeRetryCleared:          {events.ClassDecision},
	events.TypeWorkflowBegun:         {events.ClassDecision},
	events.TypeWorkflowStepped:       {events.ClassDecision},
	events.TypeWorkflowEnded:         {events.ClassDecision},
	events.TypeQuotaSet:              {events.ClassAdmin},
	events.TypeQuotaDeleted:          {events.ClassAdmin},
	events.TypeCounterReset:          {events.ClassAdmin},
	events.TypePlanSet:               {events.ClassAdmin},
}

// Every event type on every class of its own tenant's subject, and on
// another tenant's: folded only from its own tenant's subject of its class
// (and usage.recorded also from the decision subject).
func TestCheckPlacement(t *testing.T) {
	if len(placedOn) != len(events.Types()) {
		t.Fatalf("placedOn lists %d types, there are %d", len(placedOn), len(events.Types()))
	}
	for _, typ := range events.Types() {
		ev := exampleOf(t, typ)
		ev.Tenant = "acme"
		for _, class := range []string{events.ClassUsage, events.ClassDecision, events.ClassAdmin} {
			want := false
			for _, c := range placedOn[typ] {
				want = want || c == class
			}
			t.Run(string(typ)+"/"+class, func(t *testing.T) {
				err := events.CheckPlacement("acme", class, &ev)
				if want && err != nil {
					t.Fatalf("refused on its own tenant's %s subject: %v", class, err)
				}
				if !want {
					if !errors.Is(err, events.ErrMisplaced) {
						t.Fatalf("error %v, want one wrapping ErrMisplaced", err)
					}
					if !strings.Contains(err.Error(), string(typ)) || !strings.Contains(err.Error(), ev.ID) {
						t.Errorf("error %q names neither the type nor the event", err)
					}
				}
				// Right class or not, another tenant's subject never folds it.
				err = events.CheckPlacement("beta", class, &ev)
				if !errors.Is(err, events.ErrMisplaced) || !strings.Contains(err.Error(), "tenant acme") {
					t.Fatalf("on beta's %s subject: %v, want a misplaced event of tenant acme", class, err)
				}
			})
		}
		if own := events.ClassOf(typ); events.CheckPlacement("acme", own, &ev) != nil {
			t.Errorf("%s is refused on the class ClassOf gives it, %s", typ, own)
		}
	}
}

// The payload's Decided flag does not place usage: decided or not, usage
// is folded from the usage and the decision subjects and nowhere else.
func TestCheckPlacementIgnoresDecided(t *testing.T) {
	for _, decided := range []bool{false, true} {
		ev := exampleOf(t, events.TypeUsageRecorded)
		ev.Tenant = "acme"
		ev.Payload.(*events.UsageRecorded).Decided = decided
		for class, want := range map[string]bool{events.ClassUsage: true, events.ClassDecision: true, events.ClassAdmin: false} {
			if err := events.CheckPlacement("acme", class, &ev); (err == nil) != want {
				t.Errorf("decided %v on %s: %v", decided, class, err)
			}
		}
	}
}

func TestBarrierSubject(t *testing.T) {
	for p := range events.Partitions {
		if s := events.BarrierSubject(p); !events.IsBarrier(s) {
			t.Errorf("%s is not a barrier", s)
		}
	}
	for _, s := range []string{
		"ledger.ev.16.barrier", "ledger.ev.03.barrier", "ledger.ev.-1.barrier", "ledger.ev.x.barrier",
		"ledger.ev.3.barrier.x", "ledger.ev.3.acme.usage", events.Subject("barrier", events.ClassUsage), "other.3.barrier",
	} {
		if events.IsBarrier(s) {
			t.Errorf("%s taken for a barrier", s)
		}
	}
}
