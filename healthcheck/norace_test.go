//go:build !race

package healthcheck

const raceEnabled = false
