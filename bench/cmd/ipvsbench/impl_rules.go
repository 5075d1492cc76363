//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// rulesImpl is ipvsrules: the rules text of the ipvsadm implementation
// parsed and applied by ipvsrules.ApplyText (which checks every line, then
// parses them again and sends them a chunk at a time through Client.Apply)
// to create and update, rules text with
// -D lines to delete, and the list read by VirtualServices and written as
// "ipvsadm -S -n" text by ipvsrules.Format. Against ipvs-batch (the same
// changes built in memory and given to Apply), it shows what parsing the
// text costs.
type rulesImpl struct {
	c                           *ipvs.Client
	createText, updateText, del []byte
}

func (im *rulesImpl) setup(w *workload) (err error) {
	var adm ipvsadmImpl
	if err := adm.setup(w); err != nil {
		return err
	}
	var d bytes.Buffer
	for _, s := range w.svcs {
		fmt.Fprintf(&d, "-D -t %s:%d\n", s.Address, s.Port)
	}
	im.createText, im.updateText, im.del = adm.createRules, adm.updateRules, d.Bytes()
	im.c, err = ipvs.New()
	return err
}

func (im *rulesImpl) restore(ctx context.Context, text []byte) error {
	res, err := ipvsrules.ApplyText(ctx, im.c, bytes.NewReader(text))
	if err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		return res.Failed[0]
	}
	return nil
}

func (im *rulesImpl) create(ctx context.Context) error { return im.restore(ctx, im.createText) }
func (im *rulesImpl) update(ctx context.Context) error { return im.restore(ctx, im.updateText) }
func (im *rulesImpl) delete(ctx context.Context) error { return im.restore(ctx, im.del) }

func (im *rulesImpl) list(ctx context.Context) (int, int, error) {
	vs, err := im.c.VirtualServices(ctx)
	if err != nil {
		return 0, 0, err
	}
	text := ipvsrules.Format(ipvs.Desired(vs), ipvsrules.FormatOptions{})
	n := 0
	for _, v := range vs {
		n += len(v.Destinations)
	}
	if lines := bytes.Count(text, []byte("\n")); lines != len(vs)+n {
		return 0, 0, fmt.Errorf("ipvsrules.Format wrote %d lines for %d services and %d destinations", lines, len(vs), n)
	}
	return len(vs), n, nil
}

func (im *rulesImpl) close() { _ = im.c.Close() }
