package ipvs

import (
	"errors"
	"os"
	"testing"
)

// InNetNS returns fn's error as it is, and ErrClosed on a closed Client
// without calling fn.
func TestInNetNS(t *testing.T) {
	c := &Client{c: newClientWith(familyID, func() (transport, error) { return nil, errors.New("no dial") })}
	want := errors.New("from fn")
	if err := c.InNetNS(func() error { return want }); err != want {
		t.Errorf("InNetNS = %v, want fn's error itself", err)
	}
	called := false
	if err := c.InNetNS(func() error { called = true; return nil }); err != nil || !called {
		t.Errorf("InNetNS = %v, called %v", err, called)
	}
	_ = c.Close()
	called = false
	err := c.InNetNS(func() error { called = true; return nil })
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrClosed) || called {
		t.Errorf("InNetNS on a closed Client = %v (fn called: %v), want an *Error matching ErrClosed", err, called)
	}
	// A namespace that cannot be entered: a file that is not one.
	f, err := os.Open("/dev/null")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	ns := &netns{f: f, fd: int(f.Fd()), dev: ^uint64(0)}
	c2 := &Client{c: newClientWith(familyID, nil)}
	c2.c.runNS = func(fn func() error) error { return runInNetNS(ns, fn) }
	called = false
	err = c2.InNetNS(func() error { called = true; return nil })
	if !errors.As(err, &e) || e.Op != "enter network namespace" || called {
		t.Errorf("InNetNS into /dev/null = %v (fn called: %v), want an *Error from setns", err, called)
	}
}
