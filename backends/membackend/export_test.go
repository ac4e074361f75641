package membackend

// FairGroups returns the groups queue q's fair ring holds, for the
// conformance suite's check that Tidy forgets idle ones.
func FairGroups(b *Backend, q string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var groups []string
	if qs := b.queues[q]; qs != nil {
		for g := range qs.fair.groups {
			groups = append(groups, g)
		}
	}
	return groups
}
