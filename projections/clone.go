package projections

import "maps"

// Clone returns a copy of the state that Evolve can change without touching
// the original: a decider folds its own decisions onto a clone before they
// reach the stream. Values that Evolve replaces but never modifies in place
// (quota states, reservations) are shared.
func (t *Tenant) Clone() *Tenant {
	c := *t
	c.Quotas = maps.Clone(t.Quotas)
	c.Epochs = maps.Clone(t.Epochs)
	c.Rolling = maps.Clone(t.Rolling)
	c.Reservations = maps.Clone(t.Reservations)
	c.Retries = maps.Clone(t.Retries)
	c.Plans = maps.Clone(t.Plans)
	if t.Workflows != nil {
		c.Workflows = make(map[string]*Workflow, len(t.Workflows))
		for id, w := range t.Workflows {
			cw := *w
			c.Workflows[id] = &cw
		}
	}
	return &c
}
