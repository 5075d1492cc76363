//go:build linux

package ipvs_test

// ipvsrules.ApplyText on a real kernel, against ipvsrules.Parse and Apply.

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// TestIntegrationRulesApplyText restores the same rules text with
// ipvsrules.Parse and Apply in one namespace and with ipvsrules.ApplyText
// in a twin: the broad rules of TestIntegrationRulesRestore, then more than
// one chunk of changes with lines the kernel refuses among them, and
// compares the tables, the timeouts and the errors line by line. A text
// with one bad line at its end changes nothing.
func TestIntegrationRulesApplyText(t *testing.T) {
	c1, ns1 := newClient(t)
	c2, ns2 := newClient(t)
	ctx := testCtx(t)
	var b strings.Builder
	for _, l := range restoreLines(t, ctx, c1) {
		b.WriteString(l + "\n")
	}
	// 3000 changes: three chunks of ApplyText, cut inside a service's
	// destinations, a -Z between them, and refused lines (a service that
	// exists, a destination of a service that does not).
	for i := range 600 {
		svc := fmt.Sprintf("10.28.%d.%d:80", i/200, i%200+1)
		fmt.Fprintf(&b, "-A -t %s -s rr\n", svc)
		for j := range 4 {
			fmt.Fprintf(&b, "-a -t %s -r 192.168.28.%d:8080 -m -w %d\n", svc, j+1, i%7+j)
		}
		switch i {
		case 100:
			b.WriteString("-Z\n")
		case 250, 599:
			fmt.Fprintf(&b, "-A -t %s -s rr\n", svc)
			b.WriteString("-a -t 10.28.9.9:80 -r 192.168.28.1:8080 -m\n")
		}
	}
	text := b.String()
	look, ok := portNames(t)
	if !ok {
		text = strings.NewReplacer(":domain ", ":53 ", ":https ", ":443 ", ":http ", ":80 ").Replace(text)
	}
	p := ipvsrules.Parser{LookupPort: look}

	// A bad last line: nothing runs.
	bad := text + "-a -t 10.28.0.1:80 -r 192.168.28.9 -w x\n"
	res, err := p.ApplyText(ctx, c2, strings.NewReader(bad))
	var ses ipvsrules.SyntaxErrors
	if !errors.As(err, &ses) || len(ses) != 1 || ses[0].Line != strings.Count(bad, "\n") || res.Run != 0 {
		t.Fatalf("ApplyText of a text with a bad last line: %+v, %v", res, err)
	}
	if svcs, err := c2.Services(ctx); err != nil || len(svcs) != 0 {
		t.Fatalf("after ApplyText of a bad text: %d services, %v; want none", len(svcs), err)
	}

	cmds, err := p.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	errs, err := ipvsrules.Apply(ctx, c1, cmds)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	res, err = p.ApplyText(ctx, c2, strings.NewReader(text))
	if err != nil {
		t.Fatalf("ApplyText: %v", err)
	}
	if res.Commands != len(cmds) || res.Run != len(cmds) {
		t.Errorf("ApplyText: %d commands, %d run; Parse has %d", res.Commands, res.Run, len(cmds))
	}
	type failure struct {
		Line int
		Kind ipvsrules.Kind
		Err  string
	}
	var want, got []failure
	for i, e := range errs {
		if e != nil {
			want = append(want, failure{cmds[i].Line, cmds[i].Kind, e.Error()})
		}
	}
	for _, f := range res.Failed {
		got = append(got, failure{f.Line, f.Kind, f.Err.Error()})
		var ie *ipvs.Error
		if !errors.As(f, &ie) {
			t.Errorf("line %d: %v is not an *ipvs.Error", f.Line, f)
		}
	}
	if len(want) != 4 {
		t.Errorf("Apply: %d commands failed, want 4: %v", len(want), want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed commands (-Apply +ApplyText):\n%s", diff)
	}

	settledVirtualServices(t, ctx, c1, ns1)
	settledVirtualServices(t, ctx, c2, ns2)
	t1, t2 := readTable(t, ctx, c1), readTable(t, ctx, c2)
	if diff := cmp.Diff(t1, t2, cmpOpts); diff != "" {
		t.Errorf("tables after Parse+Apply and after ApplyText (-Apply +ApplyText):\n%s", diff)
	}
	if len(t2) < 600 {
		t.Errorf("ApplyText made %d services, want more than 600", len(t2))
	}
	if to, err := c2.Timeouts(ctx); err != nil || to != (ipvs.Timeouts{TCP: secs(1000), TCPFin: secs(30), UDP: secs(45)}) {
		t.Errorf("Timeouts after --set 1000 30 45: %+v, %v", to, err)
	}
}
