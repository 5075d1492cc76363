package ipvsrules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

// fakeKernel is a runner that records what it is asked to do. Changes to
// destinations of weight 13, and the commands named in fail, fail; the
// Apply call numbered exchangeFails (from 1) fails as an exchange would,
// its second half unanswered.
type fakeKernel struct {
	calls         []string
	applies       int
	exchangeFails int
	fail          map[string]bool
	onCall        func(call string)
	onApply       func()
}

var errRefused = errors.New("refused")

func (f *fakeKernel) record(call string) error {
	f.calls = append(f.calls, call)
	if f.onCall != nil {
		f.onCall(call)
	}
	if f.fail[call] {
		return errRefused
	}
	return nil
}

func (f *fakeKernel) Apply(ctx context.Context, changes []ipvs.Change) ([]error, error) {
	f.applies++
	if f.onApply != nil {
		f.onApply()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apply %d:", len(changes))
	errs := make([]error, len(changes))
	for i, ch := range changes {
		fmt.Fprintf(&b, " [%v]", ch)
		if ch.Destination.Weight == 13 {
			errs[i] = errRefused
		}
	}
	f.calls = append(f.calls, b.String())
	if f.applies == f.exchangeFails {
		for i := len(changes) / 2; i < len(changes); i++ {
			errs[i] = io.ErrUnexpectedEOF
		}
		return errs, io.ErrUnexpectedEOF
	}
	return errs, ctx.Err()
}

func (f *fakeKernel) Flush(context.Context) error   { return f.record("flush") }
func (f *fakeKernel) ZeroAll(context.Context) error { return f.record("zero") }
func (f *fakeKernel) ZeroService(_ context.Context, s ipvs.Service) error {
	return f.record("zero " + s.String())
}
func (f *fakeKernel) SetTimeouts(_ context.Context, t ipvs.Timeouts) error {
	return f.record(fmt.Sprintf("set %v %v %v", t.TCP, t.TCPFin, t.UDP))
}
func (f *fakeKernel) StartSyncDaemon(_ context.Context, d ipvs.SyncDaemon) error {
	return f.record(fmt.Sprintf("start %v %s %d", d.State, d.Interface, d.SyncID))
}
func (f *fakeKernel) StopSyncDaemon(_ context.Context, s ipvs.DaemonState) error {
	return f.record(fmt.Sprintf("stop %v", s))
}

// allKinds is rules text with every command that rules text may hold,
// runs of changes of several lengths between the others, and changes the
// fake kernel refuses (weight 13).
const allKinds = `# every kind
-C
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 10.1.0.1 -m
-a -t 10.0.0.1:80 -r 10.1.0.2 -m -w 13
-a -t 10.0.0.1:80 -r 10.1.0.3 -m
--set 900 120 300

-e -t 10.0.0.1:80 -r 10.1.0.1 -m -w 5
-Z
-Z -t 10.0.0.1:80
-E -t 10.0.0.1:80 -s sh
-A -f 7 -s wrr
-a -f 7 -r 10.2.0.1 -g -w 13
-a -f 7 -r 10.2.0.2 -i
-d -t 10.0.0.1:80 -r 10.1.0.3
--start-daemon master --mcast-interface lo --syncid 3
--stop-daemon backup
-D -f 7
-D -t 10.0.0.1:80
-A -u 10.0.0.9:53
`

// applyRun is what Apply of Parse's commands does: the calls and the
// errors of the commands.
func applyRun(t *testing.T, text string, chunk int, f *fakeKernel) ([]Command, []error, error) {
	t.Helper()
	cmds, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	errs, err := apply(context.Background(), f, cmds, chunk)
	return cmds, errs, err
}

// TestApplyText checks that ApplyText does what Parse and Apply do, call
// for call, with every kind of command, chunk sizes that cut the runs of
// changes anywhere, commands that fail and an exchange that fails.
func TestApplyText(t *testing.T) {
	var big strings.Builder
	big.WriteString(allKinds)
	for i := range 50 {
		fmt.Fprintf(&big, "-a -u 10.0.0.9:53 -r 10.3.0.%d -m -w %d\n", i+1, 10+i%5)
	}
	big.WriteString("-Z\n")
	for _, text := range []string{allKinds, big.String()} {
		for _, chunk := range []int{1, 2, 3, 4, 7, 1024} {
			for _, exchangeFails := range []int{0, 1, 3} {
				name := fmt.Sprintf("%d lines, chunk %d, exchange %d fails", strings.Count(text, "\n"), chunk, exchangeFails)
				t.Run(name, func(t *testing.T) {
					fail := map[string]bool{"zero TCP 10.0.0.1:80": true, "stop backup": true}
					want := &fakeKernel{exchangeFails: exchangeFails, fail: fail}
					cmds, werrs, wantErr := applyRun(t, text, chunk, want)
					var p Parser
					got := &fakeKernel{exchangeFails: exchangeFails, fail: fail}
					res, err := p.applyText(context.Background(), got, text, chunk)
					if diff := cmp.Diff(want.calls, got.calls); diff != "" {
						t.Errorf("calls (-Apply +ApplyText):\n%s", diff)
					}
					if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
						t.Errorf("ApplyText: %v, want %v", err, wantErr)
					}
					if res.Commands != len(cmds) {
						t.Errorf("Commands = %d, want %d", res.Commands, len(cmds))
					}
					// Apply gives the commands not run the exchange's
					// error; ApplyText leaves them out. The commands
					// run are those of the calls made.
					run := 0
					for _, c := range want.calls {
						n := 1
						fmt.Sscanf(c, "apply %d:", &n)
						run += n
					}
					if res.Run != run {
						t.Errorf("Run = %d, want %d", res.Run, run)
					}
					var wantFailed []CommandError
					for i, e := range werrs[:run] {
						if e != nil {
							wantFailed = append(wantFailed, CommandError{Index: i, Line: cmds[i].Line, Kind: cmds[i].Kind, Err: e})
						}
					}
					var gotFailed []CommandError
					for _, e := range res.Failed {
						gotFailed = append(gotFailed, *e)
					}
					if diff := cmp.Diff(wantFailed, gotFailed, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
						t.Errorf("Failed (-want +got):\n%s", diff)
					}
					if exchangeFails == 0 && len(res.Failed) == 0 {
						t.Error("no command failed: the fake kernel refuses some")
					}
				})
			}
		}
	}
}

// TestApplyTextRuns checks the calls of ApplyText for the text with every
// kind of command in chunks of 2, as they are meant, without comparing
// with Apply.
func TestApplyTextRuns(t *testing.T) {
	var p Parser
	f := &fakeKernel{}
	res, err := p.applyText(context.Background(), f, allKinds, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"flush",
		"apply 2: [create service TCP 10.0.0.1:80] [create destination 10.1.0.1:80 of TCP 10.0.0.1:80]",
		"apply 2: [create destination 10.1.0.2:80 of TCP 10.0.0.1:80] [create destination 10.1.0.3:80 of TCP 10.0.0.1:80]",
		"set 15m0s 2m0s 5m0s",
		"apply 1: [update destination 10.1.0.1:80 of TCP 10.0.0.1:80]",
		"zero",
		"zero TCP 10.0.0.1:80",
		"apply 2: [update service TCP 10.0.0.1:80] [create service FWM 7]",
		"apply 2: [create destination 10.2.0.1:0 of FWM 7] [create destination 10.2.0.2:0 of FWM 7]",
		"apply 1: [delete destination 10.1.0.3:80 of TCP 10.0.0.1:80]",
		"start master lo 3",
		"stop backup",
		"apply 2: [delete service FWM 7] [delete service TCP 10.0.0.1:80]",
		"apply 1: [create service UDP 10.0.0.9:53]",
	}
	if diff := cmp.Diff(want, f.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if res.Commands != 19 || res.Run != 19 || len(res.Failed) != 2 || res.Failed[0].Line != 5 || res.Failed[1].Line != 14 {
		t.Errorf("result %+v, want 19 commands run, lines 5 and 14 failed", res)
	}
	if got := res.Failed[0].Error(); got != "line 5: add-server: refused" || !errors.Is(res.Failed[0], errRefused) {
		t.Errorf("CommandError: %q", got)
	}
}

// TestApplyTextBad checks that a bad line anywhere leaves nothing run,
// with every bad line's error located as Parse locates it, and that
// ContinueOnError runs the good ones.
func TestApplyTextBad(t *testing.T) {
	good := strings.Split(strings.TrimSuffix(allKinds, "\n"), "\n")
	for at := range len(good) + 1 {
		lines := append(append(append([]string{}, good[:at]...), "-a -t 10.0.0.1:80 -r 10.1.0.9 -w x"), good[at:]...)
		lines = append(lines, "  -A -t 10.0.0.1:80 -s")
		text := strings.Join(lines, "\n") + "\n"
		_, wantErr := Parse(strings.NewReader(text))
		for _, chunk := range []int{1, 3, 1024} {
			f := &fakeKernel{}
			var p Parser
			res, err := p.applyText(context.Background(), f, text, chunk)
			var ses SyntaxErrors
			if !errors.As(err, &ses) || len(ses) != 2 || err.Error() != wantErr.Error() {
				t.Fatalf("bad line %d: %v, want %v", at+1, err, wantErr)
			}
			if ses[0].Line != at+1 || ses[0].Column != 34 || ses[1].Line != len(lines) || ses[1].Column != 21 {
				t.Errorf("bad line %d: errors at %d:%d and %d:%d", at+1, ses[0].Line, ses[0].Column, ses[1].Line, ses[1].Column)
			}
			if len(f.calls) != 0 || res.Run != 0 || len(res.Failed) != 0 {
				t.Errorf("bad line %d: ran %q, result %+v", at+1, f.calls, res)
			}

			p.ContinueOnError = true
			f = &fakeKernel{}
			res, err = p.applyText(context.Background(), f, text, chunk)
			if !errors.As(err, &ses) || err.Error() != wantErr.Error() {
				t.Errorf("ContinueOnError: %v, want %v", err, wantErr)
			}
			want := &fakeKernel{}
			applyRun(t, allKinds, chunk, want)
			if diff := cmp.Diff(want.calls, f.calls); diff != "" {
				t.Errorf("ContinueOnError, bad line %d, chunk %d: calls (-good lines +got):\n%s", at+1, chunk, diff)
			}
			if res.Commands != 19 || res.Run != 19 {
				t.Errorf("ContinueOnError: %+v, want 19 commands run", res)
			}
		}
	}

	// A failed read runs nothing.
	var p Parser
	if _, err := p.ApplyText(context.Background(), nil, io.MultiReader(strings.NewReader("-C\n"), &failReader{})); err == nil || err.Error() != "boom" {
		t.Errorf("ApplyText of a failing reader: %v", err)
	}
	// Nothing to run.
	if res, err := p.applyText(context.Background(), &fakeKernel{}, "# nothing\n\n", 4); err != nil || res.Commands != 0 {
		t.Errorf("ApplyText of no commands: %+v, %v", res, err)
	}
}

type failReader struct{}

func (*failReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

// TestApplyTextLookup checks a lookup that fails only in the second
// reading: that line fails, the others run. The second reading is at most
// two batches ahead of the commands run, so with batches of one change the
// fourth line is read again after the first Apply, when the lookup fails.
func TestApplyTextLookup(t *testing.T) {
	var applied atomic.Bool
	p := Parser{LookupHost: func(name string) (netip.Addr, bool) {
		return netip.MustParseAddr("10.9.0.1"), !applied.Load()
	}}
	f := &fakeKernel{onApply: func() { applied.Store(true) }}
	text := "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -m\n-a -t 10.0.0.1:80 -r 10.1.0.2 -m\n-a -t 10.0.0.1:80 -r backend -m\n-Z\n"
	res, err := p.applyText(context.Background(), f, text, 1)
	var se *SyntaxError
	if err != nil || res.Commands != 5 || res.Run != 5 || len(res.Failed) != 1 || res.Failed[0].Line != 4 || res.Failed[0].Index != 3 || !errors.As(res.Failed[0].Err, &se) || se.Line != 4 {
		t.Fatalf("ApplyText: %+v, %v; want line 4 failed with a SyntaxError", res, err)
	}
	want := []string{
		"apply 1: [create service TCP 10.0.0.1:80]",
		"apply 1: [create destination 10.1.0.1:80 of TCP 10.0.0.1:80]",
		"apply 1: [create destination 10.1.0.2:80 of TCP 10.0.0.1:80]",
		"zero",
	}
	if !cmp.Equal(want, f.calls) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
}

// TestApplyTextContext checks that a context ended between commands stops
// ApplyText there, before the next command.
func TestApplyTextContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeKernel{onCall: func(call string) {
		if call == "set 15m0s 2m0s 5m0s" {
			cancel()
		}
	}}
	var p Parser
	res, err := p.applyText(ctx, f, allKinds, 1024)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ApplyText: %v, want context.Canceled", err)
	}
	if last := f.calls[len(f.calls)-1]; last != "apply 1: [update destination 10.1.0.1:80 of TCP 10.0.0.1:80]" || res.Run != 7 {
		t.Errorf("ran %d commands, the last call %q", res.Run, last)
	}
}

func BenchmarkApplyText(b *testing.B) {
	_, text := benchTable()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var p Parser
	for b.Loop() {
		s, err := readString(bytes.NewReader(text))
		if err != nil {
			b.Fatal(err)
		}
		res, err := p.applyText(context.Background(), nopKernel{&fakeKernel{}}, s, applyTextChunk)
		if err != nil || res.Run != 10000 {
			b.Fatal(res, err)
		}
	}
}

// nopKernel accepts everything.
type nopKernel struct{ *fakeKernel }

func (nopKernel) Apply(_ context.Context, changes []ipvs.Change) ([]error, error) {
	return make([]error, len(changes)), nil
}

// BenchmarkParseApply is BenchmarkApplyText's work done by Parse and
// Apply.
func BenchmarkParseApply(b *testing.B) {
	_, text := benchTable()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	k := nopKernel{&fakeKernel{}}
	for b.Loop() {
		cmds, err := Parse(bytes.NewReader(text))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := apply(context.Background(), k, cmds, applyChunk); err != nil {
			b.Fatal(err)
		}
	}
}

// TestApplyTextLarge checks a text that the first reading checks in two
// halves: every bad line found with its own line number, wherever it is
// (around the middle too), and, with none, the calls of Parse and Apply.
func TestApplyTextLarge(t *testing.T) {
	var lines []string
	for i := range 1500 {
		svc := fmt.Sprintf("10.%d.%d.1:80", i/250, i%250)
		lines = append(lines, "-A -t "+svc+" -s rr", "# comment", "")
		for j := range 3 {
			lines = append(lines, fmt.Sprintf("-a -t %s -r 10.200.%d.%d:8080 -m -w %d", svc, i%250, j+1, 11+j))
		}
	}
	text := strings.Join(lines, "\n") + "\n"
	if len(text) < 2*checkSplit {
		t.Fatalf("the text (%d bytes) is too small to be checked in halves", len(text))
	}
	want := &fakeKernel{}
	cmds, _, _ := applyRun(t, text, 100, want)
	var p Parser
	got := &fakeKernel{}
	res, err := p.applyText(context.Background(), got, text, 100)
	if err != nil || res.Commands != len(cmds) || res.Run != len(cmds) || len(res.Failed) != 1500 {
		t.Fatalf("ApplyText: %d commands, %d run, %d failed, %v; want %d, all, 1500 (weight 13)", res.Commands, res.Run, len(res.Failed), err, len(cmds))
	}
	if diff := cmp.Diff(want.calls, got.calls); diff != "" {
		t.Errorf("calls (-Apply +ApplyText):\n%s", diff)
	}

	half := strings.Count(text[:len(text)/2], "\n")
	for _, at := range [][]int{{0}, {half - 2, half - 1, half, half + 1, half + 2}, {len(lines) - 1}, {5, half, len(lines) - 3}} {
		bad := slices.Clone(lines)
		for _, i := range at {
			bad[i] = "-a -t 10.0.0.1:80 -r 10.1.0.1 -w x"
		}
		text := strings.Join(bad, "\n") + "\n"
		_, wantErr := Parse(strings.NewReader(text))
		f := &fakeKernel{}
		res, err := p.applyText(context.Background(), f, text, 100)
		var ses SyntaxErrors
		if !errors.As(err, &ses) || len(ses) != len(at) || err.Error() != wantErr.Error() || len(f.calls) != 0 || res.Run != 0 {
			t.Errorf("bad lines %v: %v, %d calls; want\n%v", at, err, len(f.calls), wantErr)
		}
	}
}

// TestReadString checks readString of the readers it sizes up front and
// of one it cannot.
func TestReadString(t *testing.T) {
	_, text := benchTable()
	name := t.TempDir() + "/rules"
	if err := os.WriteFile(name, text, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range []io.Reader{f, bytes.NewReader(text), iotest.HalfReader(bytes.NewReader(text))} {
		if s, err := readString(r); err != nil || s != string(text) {
			t.Errorf("readString(%T): %d bytes, %v; want %d", r, len(s), err, len(text))
		}
	}
}
