package broker

import (
	"slices"
	"sort"
)

// sortValues sorts set elements; stable so that duplicate removal keeps the
// first of equal elements.
func sortValues(elems []Value) {
	if slices.IsSortedFunc(elems, Compare) {
		return
	}
	slices.SortStableFunc(elems, Compare)
}

// pairs sorts a flat key, value, key, value, … slice by key.
type pairs []Value

func (p pairs) Len() int           { return len(p) / 2 }
func (p pairs) Less(i, j int) bool { return Compare(p[2*i], p[2*j]) < 0 }
func (p pairs) Swap(i, j int) {
	p[2*i], p[2*j] = p[2*j], p[2*i]
	p[2*i+1], p[2*j+1] = p[2*j+1], p[2*i+1]
}

func sortPairs(flat []Value) {
	if sort.IsSorted(pairs(flat)) {
		return
	}
	sort.Stable(pairs(flat))
}
