//go:build race

package healthcheck

// raceEnabled: the race detector makes sync.Pool drop a part of what is
// put in it, so pooled objects are allocated again.
const raceEnabled = true
