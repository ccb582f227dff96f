package ledger

import (
	"maps"
	"slices"
	"testing"

	"github.com/ledgerworks/ledger/api"
)

// Every endpoint the service answers has an access class (api.Operations),
// which is what the roles' permissions are made of, and every class names
// an endpoint: an operation cannot be added without saying who may send it.
func TestEveryEndpointHasAnAccessClass(t *testing.T) {
	var served []string
	for _, ep := range (&Service{}).endpoints() {
		served = append(served, ep.subject)
		if _, ok := api.Operations[ep.subject]; !ok {
			t.Errorf("endpoint %s (%s) has no access class in api.Operations", ep.name, ep.subject)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(api.Operations)) {
		if !slices.Contains(served, op) {
			t.Errorf("api.Operations names %s, which no endpoint serves", op)
		}
	}
}
