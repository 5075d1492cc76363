package healthcheck

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Command runs a program (keepalived's MISC_CHECK) in the load balancer's
// network namespace: exit status 0 passes, any other fails. With Dynamic
// (misc_dynamic) the status also sets the weight: 0 passes with the weight
// unchanged, 1 fails, 2 to 255 pass with weight status-2. A program killed
// at the timeout fails and sets no weight.
//
// The environment has the target as IPVS_CHECK_ADDRESS and IPVS_CHECK_PORT
// after Env (or the process's environment if Env is nil).
type Command struct {
	Path    string
	Args    []string
	Env     []string
	Dynamic bool
}

func (c Command) validate(field string) error {
	if c.Path == "" {
		return invalid(field+".Path", "is empty")
	}
	return nil
}

// Probe implements Probe.
func (c Command) Probe(ctx context.Context, t Target) (int, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)],
		"IPVS_CHECK_ADDRESS="+t.Addr.Addr().String(),
		"IPVS_CHECK_PORT="+strconv.Itoa(int(t.Addr.Port())))
	cmd.WaitDelay = time.Second
	// The child is created by the thread that starts it, so it is born in
	// the namespace.
	if err := t.InNetNS(cmd.Start); err != nil {
		return KeepWeight, err
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		return KeepWeight, errors.Join(errors.New("killed at the timeout"), ctx.Err())
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() < 0 {
			return KeepWeight, err
		}
		code = ee.ExitCode()
	}
	if !c.Dynamic {
		if code != 0 {
			return KeepWeight, err
		}
		return KeepWeight, nil
	}
	return weightFromExit(code)
}
