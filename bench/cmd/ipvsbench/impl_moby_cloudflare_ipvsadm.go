//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"time"

	cfipvs "github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	mobyipvs "github.com/moby/ipvs"
)

// mobyImpl is moby/ipvs v1.1.0, one call per object.
type mobyImpl struct {
	h       *mobyipvs.Handle
	svcs    []*mobyipvs.Service
	dests   [][]*mobyipvs.Destination
	updated [][]*mobyipvs.Destination
}

func (im *mobyImpl) setup(w *workload) (err error) {
	im.svcs = make([]*mobyipvs.Service, w.n)
	im.dests = make([][]*mobyipvs.Destination, w.n)
	im.updated = make([][]*mobyipvs.Destination, w.n)
	for i, s := range w.svcs {
		im.svcs[i] = &mobyipvs.Service{
			AddressFamily: syscall.AF_INET, Protocol: syscall.IPPROTO_TCP,
			Address: net.IP(s.Address.AsSlice()), Port: s.Port,
			SchedName: s.Scheduler, Netmask: 0xffffffff,
		}
		for _, d := range w.dests[i] {
			md := func(weight int) *mobyipvs.Destination {
				return &mobyipvs.Destination{
					AddressFamily: syscall.AF_INET, Address: net.IP(d.Address.AsSlice()), Port: d.Port,
					Weight: weight, ConnectionFlags: mobyipvs.ConnectionFlagMasq,
				}
			}
			im.dests[i] = append(im.dests[i], md(1))
			im.updated[i] = append(im.updated[i], md(2))
		}
	}
	im.h, err = mobyipvs.New("")
	return err
}

func (im *mobyImpl) create(context.Context) error {
	for i, s := range im.svcs {
		if err := im.h.NewService(s); err != nil {
			return err
		}
		for _, d := range im.dests[i] {
			if err := im.h.NewDestination(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *mobyImpl) list(context.Context) (int, int, error) {
	svcs, err := im.h.GetServices()
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, s := range svcs {
		ds, err := im.h.GetDestinations(s)
		if err != nil {
			return 0, 0, err
		}
		n += len(ds)
	}
	return len(svcs), n, nil
}

func (im *mobyImpl) update(context.Context) error {
	for i, s := range im.svcs {
		for _, d := range im.updated[i] {
			if err := im.h.UpdateDestination(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *mobyImpl) delete(context.Context) error {
	for _, s := range im.svcs {
		if err := im.h.DelService(s); err != nil {
			return err
		}
	}
	return nil
}

func (im *mobyImpl) close() { im.h.Close() }

// cloudflareImpl is cloudflare/ipvs v0.12.0, one call per object. It sends
// no NETMASK unless one is set, which the kernel refuses with EINVAL, so
// every service carries /32.
type cloudflareImpl struct {
	c       cfipvs.Client
	svcs    []cfipvs.Service
	dests   [][]cfipvs.Destination
	updated [][]cfipvs.Destination
}

func (im *cloudflareImpl) setup(w *workload) (err error) {
	im.svcs = make([]cfipvs.Service, w.n)
	im.dests = make([][]cfipvs.Destination, w.n)
	im.updated = make([][]cfipvs.Destination, w.n)
	for i, s := range w.svcs {
		im.svcs[i] = cfipvs.Service{
			Address: s.Address, Netmask: netmask.MaskFrom(32, 32), Scheduler: s.Scheduler,
			Port: s.Port, Family: cfipvs.INET, Protocol: cfipvs.TCP,
		}
		for _, d := range w.dests[i] {
			cd := cfipvs.Destination{Address: d.Address, FwdMethod: cfipvs.Masquerade, Weight: 1, Port: d.Port, Family: cfipvs.INET}
			im.dests[i] = append(im.dests[i], cd)
			cd.Weight = 2
			im.updated[i] = append(im.updated[i], cd)
		}
	}
	im.c, err = cfipvs.New()
	return err
}

func (im *cloudflareImpl) create(context.Context) error {
	for i, s := range im.svcs {
		if err := im.c.CreateService(s); err != nil {
			return err
		}
		for _, d := range im.dests[i] {
			if err := im.c.CreateDestination(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *cloudflareImpl) list(context.Context) (int, int, error) {
	svcs, err := im.c.Services()
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, s := range svcs {
		ds, err := im.c.Destinations(s.Service)
		if err != nil {
			return 0, 0, err
		}
		n += len(ds)
	}
	return len(svcs), n, nil
}

func (im *cloudflareImpl) update(context.Context) error {
	for i, s := range im.svcs {
		for _, d := range im.updated[i] {
			if err := im.c.UpdateDestination(s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *cloudflareImpl) delete(context.Context) error {
	for _, s := range im.svcs {
		if err := im.c.RemoveService(s); err != nil {
			return err
		}
	}
	return nil
}

func (im *cloudflareImpl) close() {
	if c, ok := im.c.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}

// ipvsadmImpl runs the ipvsadm binary: -R with the rules on stdin to create
// and to update (-e lines), -Ln to list and -C to delete everything. With
// bin set, it runs that program instead (goipvsadm, the same command line).
type ipvsadmImpl struct {
	bin                      string
	createRules, updateRules []byte
	user, sys                time.Duration
}

func (im *ipvsadmImpl) setup(w *workload) error {
	var c, u bytes.Buffer
	for i, s := range w.svcs {
		svc := fmt.Sprintf("%s:%d", s.Address, s.Port)
		fmt.Fprintf(&c, "-A -t %s -s %s\n", svc, s.Scheduler)
		for _, d := range w.dests[i] {
			fmt.Fprintf(&c, "-a -t %s -r %s:%d -m -w 1\n", svc, d.Address, d.Port)
			fmt.Fprintf(&u, "-e -t %s -r %s:%d -m -w 2\n", svc, d.Address, d.Port)
		}
	}
	im.createRules, im.updateRules = c.Bytes(), u.Bytes()
	return nil
}

func (im *ipvsadmImpl) run(ctx context.Context, stdin []byte, stdout *bytes.Buffer, args ...string) error {
	bin := im.bin
	if bin == "" {
		bin = "ipvsadm"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	err := cmd.Run()
	if cmd.ProcessState != nil {
		im.user, im.sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if stderr.Len() > 0 {
		return fmt.Errorf("%s %s: %s", bin, strings.Join(args, " "), strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (im *ipvsadmImpl) childCPU() (time.Duration, time.Duration) { return im.user, im.sys }

func (im *ipvsadmImpl) create(ctx context.Context) error {
	return im.run(ctx, im.createRules, nil, "-R")
}

func (im *ipvsadmImpl) update(ctx context.Context) error {
	return im.run(ctx, im.updateRules, nil, "-R")
}

func (im *ipvsadmImpl) delete(ctx context.Context) error { return im.run(ctx, nil, nil, "-C") }

// list runs ipvsadm -Ln into a buffer and then counts the services and
// destinations it printed.
func (im *ipvsadmImpl) list(ctx context.Context) (int, int, error) {
	var out bytes.Buffer
	if err := im.run(ctx, nil, &out, "-Ln"); err != nil {
		return 0, 0, err
	}
	svcs, dests := 0, -1 // the header has one "  -> RemoteAddress:Port" line
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "TCP "):
			svcs++
		case strings.HasPrefix(l, "  -> "):
			dests++
		}
	}
	return svcs, max(dests, 0), nil
}

func (im *ipvsadmImpl) close() {}
