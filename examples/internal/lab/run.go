package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Run runs a lab program: it creates the Lab, calls fn with a context that
// is cancelled on SIGINT, SIGTERM or after limit, deletes everything the lab
// made (also when fn fails or panics), and exits with status 0 only if fn
// returned nil.
func Run(name string, limit time.Duration, fn func(ctx context.Context, l *Lab) error) {
	os.Exit(run(name, limit, fn))
}

func run(name string, limit time.Duration, fn func(ctx context.Context, l *Lab) error) (code int) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigc
		// A second signal kills the program the default way.
		signal.Stop(sigc)
		cancel(fmt.Errorf("interrupted by %v", sig))
	}()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, limit, fmt.Errorf("over the time limit of %v", limit))
	defer cancelTimeout()

	l, err := New(name, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s lab: %v\n", name, err)
		return 2
	}
	defer func() {
		if p := recover(); p != nil {
			l.Close()
			panic(p)
		}
	}()
	err = fn(ctx, l)
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	l.Close()
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		fmt.Printf("\nRESULT: %s lab FAILED: %v\n", name, err)
		return 1
	}
	if l.Outcome != "" {
		fmt.Printf("\nRESULT: %s lab OK: %s\n", name, l.Outcome)
	} else {
		fmt.Printf("\nRESULT: %s lab OK\n", name)
	}
	return 0
}
