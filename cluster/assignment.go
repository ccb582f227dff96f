package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ledgerworks/ledger/events"
)

// Assignment is what a member is configured to do for each partition: own
// (claim the lease at once when it is free) or stand by (fold the partition
// and claim its lease only once it has lapsed and no owner took it).
type Assignment struct {
	Owns    []int
	Standby []int
}

// All is every partition.
func All() []int {
	ps := make([]int, events.Partitions)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

// ParsePartitions parses a partition list such as "0-7", "1,3,9-11" or
// "all"; the empty string is no partition.
func ParsePartitions(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if s == "all" {
		return All(), nil
	}
	var ps []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := partitionNumber(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = partitionNumber(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("partitions %q: range goes down", part)
			}
		}
		for p := a; p <= b; p++ {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return slices.Compact(ps), nil
}

func partitionNumber(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n >= events.Partitions {
		return 0, fmt.Errorf("partition %q: want a number from 0 to %d", s, events.Partitions-1)
	}
	return n, nil
}

// FormatPartitions writes a sorted partition list back in ParsePartitions'
// form, with runs as ranges: "0-7,9".
func FormatPartitions(ps []int) string {
	var b strings.Builder
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(ps[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(ps[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Validate checks that the assignment names valid partitions, some at
// least, and none both to own and to stand by for.
func (a Assignment) Validate() error {
	if len(a.Owns)+len(a.Standby) == 0 {
		return fmt.Errorf("assignment: no partition to own or stand by for")
	}
	for _, ps := range [][]int{a.Owns, a.Standby} {
		for _, p := range ps {
			if p < 0 || p >= events.Partitions {
				return fmt.Errorf("assignment: partition %d out of range 0-%d", p, events.Partitions-1)
			}
		}
	}
	for _, p := range a.Owns {
		if slices.Contains(a.Standby, p) {
			return fmt.Errorf("assignment: partition %d is both owned and stood by for", p)
		}
	}
	return nil
}

// Partitions is every partition the member folds: owned and stood by for,
// sorted.
func (a Assignment) Partitions() []int {
	ps := slices.Concat(a.Owns, a.Standby)
	slices.Sort(ps)
	return slices.Compact(ps)
}

// Prefers reports whether the member claims p as soon as it is free.
func (a Assignment) Prefers(p int) bool { return slices.Contains(a.Owns, p) }
