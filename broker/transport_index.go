package broker

import (
	"slices"
	"sync"
)

// subscriber is one routing table entry: exactly one of client and local
// is set.
type subscriber struct {
	id PeerID
	// prefixes are the distinct subscription prefixes, the keys under which
	// the index files this subscriber.
	prefixes []string
	client   *hubClient
	local    *Local
	// gone is set (under the index's write lock) when the subscriber is
	// removed; prefix lists skip it until they are compacted.
	gone bool
}

func newSubscriber(id PeerID, prefixes []string, client *hubClient, local *Local) *subscriber {
	distinct := slices.Clone(prefixes)
	slices.Sort(distinct)
	return &subscriber{id: id, prefixes: slices.Compact(distinct), client: client, local: local}
}

// routeIndex finds the subscribers of a topic without looking at the
// others. Broker prefixes are plain string prefixes, so the subscribers of
// a topic are those filed under any prefix of it: the index keeps them by
// prefix and probes the topic's prefixes only at the lengths that some
// subscription actually has (usually a handful, whatever the number of
// subscribers).
//
// Adding a subscriber costs O(p log k) for p prefixes shared by k others
// (an append, since ids only grow); removing one is amortised O(p): it is
// marked gone and each prefix list is compacted once half of it is gone.
type routeIndex struct {
	mu       sync.RWMutex
	byPrefix map[string]*prefixSubs
	lens     []int       // distinct lengths of the keys of byPrefix, ascending
	lenRefs  map[int]int // how many keys of byPrefix have each length
}

// prefixSubs are the subscribers filed under one prefix, by ascending id.
type prefixSubs struct {
	subs []*subscriber
	gone int // how many of subs are gone
}

func newRouteIndex() *routeIndex {
	return &routeIndex{byPrefix: map[string]*prefixSubs{}, lenRefs: map[int]int{}}
}

func bySubscriberID(a, b *subscriber) int {
	switch {
	case a.id < b.id:
		return -1
	case a.id > b.id:
		return 1
	}
	return 0
}

// add files s under each of its prefixes.
func (x *routeIndex) add(s *subscriber) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range s.prefixes {
		e := x.byPrefix[p]
		if e == nil {
			e = &prefixSubs{}
			x.byPrefix[p] = e
			if x.lenRefs[len(p)]++; x.lenRefs[len(p)] == 1 {
				i, _ := slices.BinarySearch(x.lens, len(p))
				x.lens = slices.Insert(x.lens, i, len(p))
			}
		}
		// Ids are handed out in increasing order, so this is nearly always
		// an append; only a client whose handshake overtook an older one
		// lands before the end.
		i, _ := slices.BinarySearchFunc(e.subs, s, bySubscriberID)
		e.subs = slices.Insert(e.subs, i, s)
	}
}

// remove takes s out of the index. Removing it twice is harmless.
func (x *routeIndex) remove(s *subscriber) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if s.gone {
		return
	}
	s.gone = true
	for _, p := range s.prefixes {
		e := x.byPrefix[p]
		if e == nil {
			continue
		}
		e.gone++
		switch {
		case e.gone == len(e.subs):
			delete(x.byPrefix, p)
			if x.lenRefs[len(p)]--; x.lenRefs[len(p)] == 0 {
				delete(x.lenRefs, len(p))
				i, _ := slices.BinarySearch(x.lens, len(p))
				x.lens = slices.Delete(x.lens, i, i+1)
			}
		case 2*e.gone > len(e.subs):
			live := slices.DeleteFunc(e.subs, func(s *subscriber) bool { return s.gone })
			e.subs, e.gone = live, 0
		}
	}
}

// match appends to dst every subscriber of topic except `from`, once each,
// by ascending id, so that delivery order across subscribers is
// repeatable.
func (x *routeIndex) match(topic string, from PeerID, dst []*subscriber) []*subscriber {
	x.mu.RLock()
	defer x.mu.RUnlock()
	lists := 0
	for _, n := range x.lens {
		if n > len(topic) {
			break
		}
		e := x.byPrefix[topic[:n]]
		if e == nil {
			continue
		}
		lists++
		for _, s := range e.subs {
			if !s.gone && s.id != from {
				dst = append(dst, s)
			}
		}
	}
	if lists > 1 {
		// A subscriber may be filed under several prefixes of the topic.
		slices.SortFunc(dst, bySubscriberID)
		dst = slices.Compact(dst)
	}
	return dst
}

// matchBuffers recycles the match lists of route, so that routing a
// message does not allocate one.
var matchBuffers = sync.Pool{New: func() any { return new([]*subscriber) }}
