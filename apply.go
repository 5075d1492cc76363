package ipvs

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// ChangeKind is what a Change does.
type ChangeKind uint8

// The kinds of change. Each is named after the Client method that makes the
// same change alone, with the same validation and the same errors:
// Change{Kind: CreateService, Service: s} in Apply is c.CreateService(ctx, s).
const (
	CreateService ChangeKind = iota + 1
	UpdateService
	DeleteService
	CreateDestination
	UpdateDestination
	DeleteDestination
)

// String returns the kind as a verb phrase, such as "create service".
func (k ChangeKind) String() string { return k.op() }

func (k ChangeKind) op() string {
	switch k {
	case CreateService:
		return "create service"
	case UpdateService:
		return "update service"
	case DeleteService:
		return "delete service"
	case CreateDestination:
		return "create destination"
	case UpdateDestination:
		return "update destination"
	case DeleteDestination:
		return "delete destination"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

func (k ChangeKind) cmd() uint8 {
	switch k {
	case CreateService:
		return uapi.CmdNewService
	case UpdateService:
		return uapi.CmdSetService
	case DeleteService:
		return uapi.CmdDelService
	case CreateDestination:
		return uapi.CmdNewDest
	case UpdateDestination:
		return uapi.CmdSetDest
	case DeleteDestination:
		return uapi.CmdDelDest
	}
	return 0
}

// A Change is one mutation of the IPVS table, for Apply. Destination is used
// by the destination kinds only; for them Service only needs its identity.
type Change struct {
	Kind        ChangeKind
	Service     Service
	Destination Destination
}

// String describes the change, such as "create destination 10.0.2.1:80 of
// TCP 10.0.1.1:80".
func (ch Change) String() string {
	switch ch.Kind {
	case CreateDestination, UpdateDestination, DeleteDestination:
		return ch.Kind.op() + " " + ch.Destination.String() + " of " + ch.Service.String()
	}
	return ch.Kind.op() + " " + ch.Service.String()
}

// validateWithValidService is validate for a change whose service identity
// is known to be valid.
func (ch Change) validateWithValidService() error {
	op := ch.Kind.op()
	switch ch.Kind {
	case CreateDestination, UpdateDestination:
		return ch.Destination.validateConfig(op, &ch.Service)
	case DeleteDestination:
		return ch.Destination.validateAddress(op)
	}
	return ch.validate()
}

// validate checks a change as the single-call method would.
func (ch Change) validate() error {
	op := ch.Kind.op()
	switch ch.Kind {
	case CreateService, UpdateService:
		return ch.Service.validate(op)
	case DeleteService:
		return ch.Service.validateIdentity(op)
	case CreateDestination, UpdateDestination:
		return ch.Destination.validate(op, &ch.Service)
	case DeleteDestination:
		if err := ch.Service.validateIdentity(op); err != nil {
			return err
		}
		return ch.Destination.validateAddress(op)
	}
	return invalid(op, "Change.Kind", "unknown kind %d", uint8(ch.Kind))
}

// ErrUnacknowledged is matched by errors.Is for a change of Apply that got
// no answer: the kernel dropped it because the socket's receive buffer
// overflowed, or sent none (it does not answer a request its handler ended
// with EINTR). The kernel executed the change, but whether it succeeded is
// unknown: read the table back (Reconcile does).
var ErrUnacknowledged = errors.New("change sent but its acknowledgement was lost")

// Apply makes the changes in order, sending many per system call, and
// returns one error per change: nil if the kernel applied it, an *Error
// otherwise, with the same meaning as from the single-call method. Invalid
// changes are refused before sending and the others still go. A failing
// change never stops the ones after it: the kernel executes each request on
// its own, without transactions.
//
// The returned error is non-nil if the exchange itself failed (for example
// the context expired); the changes whose outcome is then unknown carry that
// error too.
func (c *Client) Apply(ctx context.Context, changes []Change) ([]error, error) {
	errs := make([]error, len(changes))
	for i, ch := range changes {
		if i > 0 && errs[i-1] == nil && sameIdentity(ch.Service, changes[i-1].Service) {
			// The service's identity was found valid just before.
			errs[i] = ch.validateWithValidService()
		} else {
			errs[i] = ch.validate()
		}
	}
	if len(changes) == 0 {
		return errs, nil
	}
	return errs, c.c.apply(ctx, changes, errs)
}
