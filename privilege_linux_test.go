//go:build linux

package ipvs

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// fakeSockets dials fake kernels and counts the open ones. Info is answered
// after gate lets it through (nil: at once); Timeouts never is, so that call
// holds its socket until its context ends.
type fakeSockets struct {
	t    *testing.T
	gate chan struct{}

	mu      sync.Mutex
	open    int
	maxOpen int
	dials   int
}

func (p *fakeSockets) dial() (transport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dials++
	p.open++
	p.maxOpen = max(p.maxOpen, p.open)
	return &countedTransport{p: p, fakeKernel: &fakeKernel{serve: p.serve, blocks: true}}, nil
}

func (p *fakeSockets) serve(greq genetlink.Message, _ netlink.Message) ([]genetlink.Message, error) {
	if greq.Header.Command == uapi.CmdGetConfig {
		return nil, errSilent
	}
	if p.gate != nil {
		<-p.gate
	} else if rand.IntN(4) == 0 {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
	}
	return []genetlink.Message{infoReply()}, nil
}

func (p *fakeSockets) counts() (open, maxOpen, dials int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open, p.maxOpen, p.dials
}

// countedTransport is a fake kernel whose reads wait, as a socket's do,
// until an answer is queued, the deadline passes or interrupt is called;
// its sockets are counted.
type countedTransport struct {
	*fakeKernel
	p *fakeSockets

	mu     sync.Mutex
	closed bool
}

func (c *countedTransport) close() error {
	c.mu.Lock()
	closed := c.closed
	c.closed = true
	c.mu.Unlock()
	if closed {
		c.p.t.Error("a socket was closed twice")
		return nil
	}
	c.p.mu.Lock()
	c.p.open--
	c.p.mu.Unlock()
	return nil
}

// burst runs workers goroutines of calls on cl until stop is closed or, if
// stop is nil, for n calls each: successful Infos, Infos with a cancelled
// context, and Timeouts cut short by a deadline. It returns the errors other
// than those the calls should have.
func burst(cl *Client, workers, n int, stop chan struct{}) []error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := 0; stop != nil || i < n; i++ {
				if stop != nil {
					select {
					case <-stop:
						return
					default:
					}
				}
				var err error
				want := error(nil)
				switch i % 4 {
				case 0, 1:
					_, err = cl.Info(context.Background())
				case 2:
					ctx, cancel := context.WithCancel(context.Background())
					cancel()
					_, err = cl.Info(ctx)
					want = context.Canceled
				case 3:
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rand.IntN(3))*time.Millisecond)
					_, err = cl.Timeouts(ctx)
					cancel()
					want = context.DeadlineExceeded
				}
				if err == nil && want == nil || want != nil && errors.Is(err, want) {
					continue
				}
				if stop != nil && errors.Is(err, ErrClosed) {
					return
				}
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// TestSocketBound: bursts of concurrent calls, cancellations and deadlines
// never have more sockets open than the bound, leave at most the idle ones
// open, and Close in the middle of a burst leaves none.
func TestSocketBound(t *testing.T) {
	for _, bound := range []int{1, 4, 16} {
		p := &fakeSockets{t: t}
		c := newClientWith(familyID, p.dial)
		c.max = bound
		cl := &Client{c: c}
		for _, err := range burst(cl, 32, 40, nil) {
			t.Errorf("bound %d: unexpected error: %v", bound, err)
		}
		open, maxOpen, dials := p.counts()
		if maxOpen > bound {
			t.Errorf("bound %d: %d sockets open at once", bound, maxOpen)
		}
		if idle := min(bound, maxIdleSockets); open > idle || open != len(c.idle) {
			t.Errorf("bound %d: %d sockets open after the burst, %d idle; want the idle ones, at most %d", bound, open, len(c.idle), idle)
		}
		t.Logf("bound %d: %d dials, at most %d open", bound, dials, maxOpen)

		stop := make(chan struct{})
		done := make(chan []error)
		go func() { done <- burst(cl, 32, 0, stop) }()
		time.Sleep(20 * time.Millisecond)
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		close(stop)
		for _, err := range <-done {
			t.Errorf("bound %d, closing: unexpected error: %v", bound, err)
		}
		open, maxOpen, _ = p.counts()
		if maxOpen > bound {
			t.Errorf("bound %d, closing: %d sockets open at once", bound, maxOpen)
		}
		if open != 0 {
			t.Errorf("bound %d: %d sockets open after Close and the calls' return, want 0", bound, open)
		}
	}
}

// TestSocketWait: with every socket in use a call waits, up to its context,
// and Close ends the wait with ErrClosed; a call in flight at Close
// completes, and its socket is closed then.
func TestSocketWait(t *testing.T) {
	p := &fakeSockets{t: t, gate: make(chan struct{})}
	c := newClientWith(familyID, p.dial)
	c.max = 2
	cl := &Client{c: c}

	// One socket is held by a call the kernel never answers, one by an
	// Info whose answer waits for the gate.
	hungCtx, hungCancel := context.WithCancel(context.Background())
	hung := make(chan error, 1)
	go func() { _, err := cl.Timeouts(hungCtx); hung <- err }()
	inFlight := make(chan error, 1)
	go func() { _, err := cl.Info(context.Background()); inFlight <- err }()
	waitFor(t, "both sockets in use", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.busy == 2
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := cl.Info(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Info with every socket in use: %v, want context.DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("the waiting Info returned after %v", el)
	}
	if _, _, dials := p.counts(); dials != 2 {
		t.Errorf("%d dials, want 2: a call beyond the bound dialled", dials)
	}

	waiting := make(chan error, 1)
	go func() { _, err := cl.Info(context.Background()); waiting <- err }()
	waitFor(t, "a call waiting", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.waiting == 1
	})
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("waiting call at Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the wait for a socket")
	}

	// The calls in flight complete: one answered, one cancelled.
	close(p.gate)
	if err := <-inFlight; err != nil {
		t.Errorf("Info in flight at Close: %v, want success", err)
	}
	hungCancel()
	if err := <-hung; !errors.Is(err, context.Canceled) {
		t.Errorf("Timeouts in flight at Close, then cancelled: %v, want context.Canceled", err)
	}
	if open, _, _ := p.counts(); open != 0 {
		t.Errorf("%d sockets open after Close and the calls in flight, want 0", open)
	}
	_, err := cl.Info(context.Background())
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) || err.Error() != "ipvs: get info: client is closed" {
		t.Errorf("Info after Close: %v, want an *Error matching ErrClosed and net.ErrClosed", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestCloseDuringDial: the namespace file stays open while a dial, which may
// enter it, is under way, and is closed when the dial ends; the socket
// dialled for a closed client is closed.
func TestCloseDuringDial(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := &fakeSockets{t: t}
	entered, release := make(chan struct{}), make(chan struct{})
	c := newClientWith(familyID, func() (transport, error) {
		close(entered)
		<-release
		return p.dial()
	})
	c.nsFile = r // stands for the namespace: open while its read end is
	cl := &Client{c: c}
	done := make(chan error, 1)
	go func() { _, err := cl.Info(context.Background()); done <- err }()
	<-entered
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte{0}); err != nil {
		t.Errorf("the namespace file was closed during a dial: %v", err)
	}
	close(release)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Info dialling at Close: %v, want ErrClosed", err)
	}
	if _, err := w.Write([]byte{0}); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("write to the namespace stand-in after the dial: %v, want EPIPE (file closed)", err)
	}
	if open, _, _ := p.counts(); open != 0 {
		t.Errorf("%d sockets open, want 0", open)
	}
}

func TestWithMaxSocketsInvalid(t *testing.T) {
	for _, n := range []int{0, -1} {
		_, err := New(WithMaxSockets(n))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, os.ErrInvalid) || e.Field != "WithMaxSockets" {
			t.Errorf("New(WithMaxSockets(%d)) = %v, want an invalid-input *Error", n, err)
		}
	}
}

// TestNetNSErrorText: failing to enter a namespace names CAP_SYS_ADMIN, not
// CAP_NET_ADMIN, and still matches os.ErrPermission and EPERM.
func TestNetNSErrorText(t *testing.T) {
	err := wrap("get info", uapi.CmdGetInfo, &netnsError{os.NewSyscallError("setns", syscall.EPERM)})
	msg := err.Error()
	if !strings.Contains(msg, "CAP_SYS_ADMIN") || strings.Contains(msg, "CAP_NET_ADMIN") {
		t.Errorf("error text %q: want CAP_SYS_ADMIN named, CAP_NET_ADMIN not", msg)
	}
	if !errors.Is(err, os.ErrPermission) || !errors.Is(err, syscall.EPERM) {
		t.Errorf("%v does not match os.ErrPermission and EPERM", err)
	}
	if errors.Is(err, os.ErrNotExist) {
		t.Errorf("%v matches os.ErrNotExist", err)
	}
}
