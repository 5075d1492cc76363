//go:build !linux

package healthcheck

const plainStarts = false

// startPlain is HTTP.start's path for a plain GET on Linux: elsewhere the
// standard library dials.
func (h HTTP) startPlain(Target, bool, *spares) (started, bool, error) {
	return started{}, false, nil
}
