package cluster

import (
	"slices"
	"testing"
)

func TestParsePartitions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "", want: nil},
		{in: "3", want: []int{3}},
		{in: "0-3", want: []int{0, 1, 2, 3}},
		{in: " 9, 1,3-4 ,3", want: []int{1, 3, 4, 9}},
		{in: "all", want: All()},
		{in: "15-15", want: []int{15}},
		{in: "16", err: true},
		{in: "-1", err: true},
		{in: "4-2", err: true},
		{in: "a", err: true},
		{in: "1,,2", err: true},
		{in: "0-16", err: true},
	} {
		got, err := ParsePartitions(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePartitions(%q) = %v, %v; want %v, error %t", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil && len(got) > 0 {
			back, err := ParsePartitions(FormatPartitions(got))
			if err != nil || !slices.Equal(back, got) {
				t.Errorf("FormatPartitions(%v) = %q does not parse back: %v, %v", got, FormatPartitions(got), back, err)
			}
		}
	}
	if s := FormatPartitions([]int{0, 1, 2, 5, 7, 8}); s != "0-2,5,7-8" {
		t.Errorf("FormatPartitions = %q", s)
	}
}

func TestAssignmentValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Assignment
		ok   bool
	}{
		{"owns some", Assignment{Owns: []int{0, 1}}, true},
		{"stands by only", Assignment{Standby: []int{4}}, true},
		{"owns and stands by for others", Assignment{Owns: []int{0}, Standby: []int{1}}, true},
		{"nothing", Assignment{}, false},
		{"both for one partition", Assignment{Owns: []int{2}, Standby: []int{2}}, false},
		{"out of range", Assignment{Owns: []int{16}}, false},
		{"negative", Assignment{Standby: []int{-1}}, false},
	} {
		if err := tc.a.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %t", tc.name, err, tc.ok)
		}
	}
	a := Assignment{Owns: []int{3, 1}, Standby: []int{2}}
	if got := a.Partitions(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("Partitions() = %v", got)
	}
	if !a.Prefers(3) || a.Prefers(2) {
		t.Error("Prefers: owns 3, stands by for 2")
	}
}
