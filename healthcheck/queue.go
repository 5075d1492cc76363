package healthcheck

// A checkQueue holds the checks that wait to run, as a binary heap ordered
// by when they run next: the Monitor finds the due ones without looking
// at the others.
type checkQueue []*checkState

func (q *checkQueue) push(c *checkState) {
	*q = append(*q, c)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].next.Before(h[p].next) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

// pop removes and returns the check that runs first.
func (q *checkQueue) pop() *checkState {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = nil
	h = h[:n]
	*q = h
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].next.Before(h[l].next) {
			m = r
		}
		if !h[m].next.Before(h[i].next) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top
}
