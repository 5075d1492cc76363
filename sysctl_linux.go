//go:build linux

package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysctlDir is the directory of the IPVS sysctls, for openProc.
const sysctlDir = "sys/net/ipv4/vs"

// sysctlMax bounds what is read of one sysctl (est_cpulist is the longest).
const sysctlMax = 1 << 16

func (c *client) sysctls(ctx context.Context) (Sysctls, error) {
	const op = "read sysctls"
	if err := ctx.Err(); err != nil {
		return Sysctls{}, &Error{Op: op, Err: err}
	}
	names, err := c.sysctlNames(op)
	if err != nil {
		return Sysctls{}, err
	}
	var s Sysctls
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return Sysctls{}, &Error{Op: op, Err: err}
		}
		f, err := c.openProc(sysctlDir+"/"+name, os.O_RDONLY)
		if errors.Is(err, os.ErrNotExist) {
			continue // gone since the listing: ip_vs is being unloaded
		}
		if err != nil {
			return Sysctls{}, procOpError(op, sysctlField(name), "cannot open net.ipv4.vs."+name, err)
		}
		b, err := io.ReadAll(io.LimitReader(f, sysctlMax))
		_ = f.Close()
		if err != nil {
			return Sysctls{}, procOpError(op, sysctlField(name), "cannot read net.ipv4.vs."+name, err)
		}
		if err := s.decode(name, string(b)); err != nil {
			return Sysctls{}, &Error{Op: op, Field: sysctlField(name),
				Message: fmt.Sprintf("cannot parse net.ipv4.vs.%s: %q", name, b), Err: err}
		}
	}
	return s, nil
}

// sysctlNames lists the IPVS sysctls of the client's namespace, sorted.
func (c *client) sysctlNames(op string) ([]string, error) {
	d, err := c.openProc(sysctlDir, os.O_RDONLY|syscall.O_DIRECTORY)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &Error{Op: op, Message: "IPVS is not loaded: the namespace has no /proc/sys/net/ipv4/vs (the ip_vs module was unloaded); load it again (modprobe ip_vs)", Err: syscall.ENOENT}
		}
		return nil, procOpError(op, "", "cannot open /proc/sys/net/ipv4/vs", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, procOpError(op, "", "cannot list /proc/sys/net/ipv4/vs", err)
	}
	slices.Sort(names)
	return names, nil
}

func (c *client) setSysctls(ctx context.Context, op string, writes []sysctlWrite) error {
	files := make([]*os.File, 0, len(writes))
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	// Open everything first: a missing knob or permission fails before
	// anything is written.
	for _, w := range writes {
		if err := ctx.Err(); err != nil {
			return &Error{Op: op, Err: err}
		}
		f, err := c.openProc(sysctlDir+"/"+w.name, os.O_WRONLY)
		if errors.Is(err, os.ErrNotExist) {
			return c.missingSysctl(op, w)
		}
		if err != nil {
			msg := "cannot open net.ipv4.vs." + w.name + " for writing"
			if errors.Is(err, os.ErrPermission) {
				msg += ": CAP_NET_ADMIN in the user namespace that owns the network namespace is required, and some knobs are read-only outside the initial namespace"
			}
			return procOpError(op, w.field(), msg, err)
		}
		files = append(files, f)
	}
	for i, w := range writes {
		if err := ctx.Err(); err != nil {
			return &Error{Op: op, Err: err}
		}
		if _, err := io.WriteString(files[i], w.text); err != nil {
			return procOpError(op, w.field(), fmt.Sprintf("the kernel refused %q for net.ipv4.vs.%s", strings.TrimSuffix(w.text, "\n"), w.name), err)
		}
	}
	return nil
}

// missingSysctl explains why the file of w does not exist.
func (c *client) missingSysctl(op string, w sysctlWrite) error {
	names, err := c.sysctlNames(op)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("this kernel (%s) has no net.ipv4.vs.%s", unameRelease(), w.name)
	switch {
	case len(names) == 0:
		msg += ": the kernel shows no IPVS sysctls in this namespace (kernels before 6.10 hide them in a network namespace that a user namespace other than the initial one owns)"
	case w.knob != nil && w.knob.since != "":
		msg += ": Linux " + w.knob.since + " added it"
	case w.knob != nil && w.knob.needs != "":
		msg += ": it needs " + w.knob.needs
	}
	return &Error{Op: op, Field: w.field(), Message: msg, Err: errors.ErrUnsupported}
}

// sysctlField names the Sysctls field of the file name, for errors.
func sysctlField(name string) string {
	if k := knobNamed(name); k != nil {
		return "Sysctls." + k.field
	}
	return sysctlWrite{name: name}.field()
}

// procOpError is an *Error for a failed /proc file operation, with the errno
// itself as Err so that the errno's name is shown and errors.Is maps it.
func procOpError(op, field, msg string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, ErrClosed) {
		msg = ""
	}
	return &Error{Op: op, Field: field, Message: msg, Err: err}
}

// unameRelease returns the running kernel's release, for messages.
func unameRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown release"
	}
	return "Linux " + unix.ByteSliceToString(u.Release[:])
}
