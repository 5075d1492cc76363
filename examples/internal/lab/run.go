package lab

import (
	"context"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()

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
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (interrupted or over the time limit of %v)", err, limit)
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
