//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipvs-go/ipvs"
)

// callImpl is this library with one call per object.
type callImpl struct {
	c       *ipvs.Client
	w       *workload
	updated [][]ipvs.Destination // weight 2
}

func (im *callImpl) setup(w *workload) (err error) {
	im.w = w
	im.updated = make([][]ipvs.Destination, w.n)
	for i := range w.n {
		im.updated[i] = make([]ipvs.Destination, w.m)
		for j := range w.m {
			im.updated[i][j] = w.dests[i][j]
			im.updated[i][j].Weight = 2
		}
	}
	im.c, err = ipvs.New()
	return err
}

func (im *callImpl) create(ctx context.Context) error {
	for i, s := range im.w.svcs {
		if err := im.c.CreateService(ctx, s); err != nil {
			return err
		}
		for _, d := range im.w.dests[i] {
			if err := im.c.CreateDestination(ctx, s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *callImpl) list(ctx context.Context) (int, int, error) {
	svcs, err := im.c.Services(ctx)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, s := range svcs {
		ds, err := im.c.Destinations(ctx, s.Service)
		if err != nil {
			return 0, 0, err
		}
		n += len(ds)
	}
	return len(svcs), n, nil
}

func (im *callImpl) update(ctx context.Context) error {
	for i, s := range im.w.svcs {
		for _, d := range im.updated[i] {
			if err := im.c.UpdateDestination(ctx, s, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (im *callImpl) delete(ctx context.Context) error {
	for _, s := range im.w.svcs {
		if err := im.c.DeleteService(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (im *callImpl) close() { _ = im.c.Close() }

// batchImpl is this library's Apply with every change in one call, and
// VirtualServices for the list.
type batchImpl struct {
	c                      *ipvs.Client
	creates, updates, dels []ipvs.Change
}

func (im *batchImpl) setup(w *workload) (err error) {
	im.creates = make([]ipvs.Change, 0, w.n*(1+w.m))
	im.updates = make([]ipvs.Change, 0, w.n*w.m)
	im.dels = make([]ipvs.Change, 0, w.n)
	for i, s := range w.svcs {
		im.creates = append(im.creates, ipvs.Change{Kind: ipvs.CreateService, Service: s})
		for _, d := range w.dests[i] {
			im.creates = append(im.creates, ipvs.Change{Kind: ipvs.CreateDestination, Service: s, Destination: d})
			d.Weight = 2
			im.updates = append(im.updates, ipvs.Change{Kind: ipvs.UpdateDestination, Service: s, Destination: d})
		}
		im.dels = append(im.dels, ipvs.Change{Kind: ipvs.DeleteService, Service: s})
	}
	im.c, err = ipvs.New()
	return err
}

func apply(ctx context.Context, c *ipvs.Client, changes []ipvs.Change) error {
	errs, err := c.Apply(ctx, changes)
	if err != nil {
		return err
	}
	var failed []error
	for i, e := range errs {
		if e != nil {
			failed = append(failed, fmt.Errorf("change %d (%v): %w", i, changes[i], e))
			if len(failed) == 5 {
				failed = append(failed, errors.New("more failed changes not shown"))
				break
			}
		}
	}
	return errors.Join(failed...)
}

func (im *batchImpl) create(ctx context.Context) error { return apply(ctx, im.c, im.creates) }
func (im *batchImpl) update(ctx context.Context) error { return apply(ctx, im.c, im.updates) }
func (im *batchImpl) delete(ctx context.Context) error { return apply(ctx, im.c, im.dels) }
func (im *batchImpl) list(ctx context.Context) (int, int, error) {
	return listVirtualServices(ctx, im.c)
}
func (im *batchImpl) close() { _ = im.c.Close() }

func listVirtualServices(ctx context.Context, c *ipvs.Client) (int, int, error) {
	vs, err := c.VirtualServices(ctx)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for _, v := range vs {
		n += len(v.Destinations)
	}
	return len(vs), n, nil
}

// reconcileImpl is this library's Reconcile: from empty (create), to new
// weights (update), with nothing to change (noop) and to an empty table
// (delete).
type reconcileImpl struct {
	c               *ipvs.Client
	n, m            int
	initial, second []ipvs.VirtualService
}

func (im *reconcileImpl) setup(w *workload) (err error) {
	im.n, im.m = w.n, w.m
	im.initial, im.second = w.desired(1), w.desired(2)
	im.c, err = ipvs.New()
	return err
}

// reconcile runs Reconcile and checks that it made exactly want changes.
func reconcile(ctx context.Context, c *ipvs.Client, desired []ipvs.VirtualService, want int) error {
	res, err := c.Reconcile(ctx, desired, ipvs.ReconcileOptions{})
	if err != nil {
		return err
	}
	if len(res.Changes) != want {
		return fmt.Errorf("reconcile made %d changes, want %d", len(res.Changes), want)
	}
	return nil
}

func (im *reconcileImpl) create(ctx context.Context) error {
	return reconcile(ctx, im.c, im.initial, im.n*(1+im.m))
}
func (im *reconcileImpl) update(ctx context.Context) error {
	return reconcile(ctx, im.c, im.second, im.n*im.m)
}
func (im *reconcileImpl) noop(ctx context.Context) error { return reconcile(ctx, im.c, im.second, 0) }
func (im *reconcileImpl) delete(ctx context.Context) error {
	return reconcile(ctx, im.c, nil, im.n)
}
func (im *reconcileImpl) list(ctx context.Context) (int, int, error) {
	return listVirtualServices(ctx, im.c)
}
func (im *reconcileImpl) close() { _ = im.c.Close() }
