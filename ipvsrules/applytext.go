package ipvsrules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/ipvs-go/ipvs"
)

// applyChunk is the most changes Apply gives one ipvs.Client.Apply.
const applyChunk = 1024

// ApplyText reads rules text from r and runs it through c with the zero
// Parser: see Parser.ApplyText.
func ApplyText(ctx context.Context, c *ipvs.Client, r io.Reader) (ApplyTextResult, error) {
	var p Parser
	return p.ApplyText(ctx, c, r)
}

// An ApplyTextResult tells what ApplyText ran.
type ApplyTextResult struct {
	// Commands is the number of commands in the text: its lines but the
	// blank, comment and bad ones.
	Commands int
	// Run is the number of commands run: Commands, unless an exchange
	// failed or the context ended.
	Run int
	// Failed are the errors of the commands run that failed, in order.
	Failed []*CommandError
}

// A CommandError is the error of one command of rules text that failed.
type CommandError struct {
	// Index is the command's index among the text's commands, from 0.
	Index int
	// Line is its line in the text, from 1.
	Line int
	// Kind is the command.
	Kind Kind
	// Err is the error of the ipvs.Client method that ran it (for a
	// change whose outcome an exchange failure left unknown, that
	// failure), or a *SyntaxError for a line that Parser.LookupHost or
	// LookupPort made bad only in the second reading.
	Err error
}

// Error returns the error with its line, such as "line 4: add-server:
// ...".
func (e *CommandError) Error() string {
	return fmt.Sprintf("line %d: %s: %v", e.Line, e.Kind, e.Err)
}

// Unwrap returns Err.
func (e *CommandError) Unwrap() error { return e.Err }

// ApplyText reads rules text from r and runs its commands through c, in
// order, as Apply runs the commands of Parse (each run of consecutive
// changes through c.Apply, in chunks of at most 512; a command the kernel
// refuses does not stop the ones after it), without holding every Command:
// a first reading of the text checks every line (a large text in two
// halves at once) while a second, in another goroutine, parses them again into two chunks of changes, which are run
// once the first reading has found every line good, each while the other
// fills. Its memory is the text and two chunks, where Parse and Apply take
// about 300 bytes per command more. This is the way to restore a saved
// table, as ipvsadm -R does.
//
// If a line is bad, nothing is run, and the error is SyntaxErrors with
// every bad line, as from Parse; with p.ContinueOnError the good lines are
// run and the SyntaxErrors returned after (joined with an exchange's error,
// if one failed). LookupHost and LookupPort, if set, are called for each
// line in both readings, from up to three goroutines at once: they must be
// safe for concurrent use (ServicesFile's is).
//
// The commands that failed are in the result's Failed. The error is also
// non-nil if reading r failed (nothing is run), or if an exchange failed or
// ctx ended: the commands after the failed exchange are then not run, and
// not in Failed (Apply gives them that error).
func (p *Parser) ApplyText(ctx context.Context, c *ipvs.Client, r io.Reader) (ApplyTextResult, error) {
	text, err := readString(r)
	if err != nil {
		return ApplyTextResult{}, err
	}
	return p.applyText(ctx, c, text, applyTextChunk)
}

// applyTextChunk is the most changes ApplyText gives one ipvs.Client.Apply.
const applyTextChunk = 512

// cmdRef is a command of a batch, for its error.
type cmdRef struct {
	index, line int
	kind        Kind
}

// A batch is what the second reading gives to run at once: a run of
// changes, or one command that is not a change; and the lines before them
// that failed in that reading.
type batch struct {
	changes []ipvs.Change
	refs    []cmdRef
	cmd     Command // if ref.kind is not 0
	ref     cmdRef
	failed  []*CommandError
}

// A reader is the second reading of rules text, in a goroutine, into two
// batches in turn.
type reader struct {
	full chan *batch // the batches to run, in order; closed at the end
	free chan *batch // the batches run
	done chan struct{}
	wg   sync.WaitGroup
}

// read starts the second reading of text, whose bad lines are bad, in
// batches of at most chunk changes.
func (p *Parser) read(text string, bad SyntaxErrors, chunk int) *reader {
	n := min(chunk, strings.Count(text, "\n")+1)
	rd := &reader{full: make(chan *batch, 2), free: make(chan *batch, 2), done: make(chan struct{})}
	for range 2 {
		rd.free <- &batch{changes: make([]ipvs.Change, 0, n), refs: make([]cmdRef, 0, n)}
	}
	rd.wg.Go(func() {
		defer close(rd.full)
		p.reread(rd, text, bad)
	})
	return rd
}

// stop ends the reading and waits for its goroutine.
func (rd *reader) stop() {
	close(rd.done)
	rd.wg.Wait()
}

func (p *Parser) reread(rd *reader, text string, bad SyntaxErrors) {
	var b *batch
	get := func() bool {
		select {
		case b = <-rd.free:
			b.changes, b.refs, b.failed, b.ref = b.changes[:0], b.refs[:0], nil, cmdRef{}
			return true
		case <-rd.done:
			return false
		}
	}
	put := func() bool {
		select {
		case rd.full <- b:
			b = nil
			return true
		case <-rd.done:
			return false
		}
	}
	var cmd Command
	ls := lines{text: text}
	nextBad, index := 0, 0
	for ls.next() {
		if nextBad < len(bad) && bad[nextBad].Line == ls.lineNo {
			nextBad++
			continue
		}
		i := index
		index++
		if b == nil && !get() {
			return
		}
		if err := p.parse(&ls, &cmd); err != nil {
			// A lookup answered otherwise than in the first reading.
			b.failed = append(b.failed, &CommandError{Index: i, Line: ls.lineNo, Err: ls.locate(err)})
			continue
		}
		if cmd.Kind.isChange() {
			b.changes = b.changes[:len(b.changes)+1]
			cmd.changeTo(&b.changes[len(b.changes)-1])
			b.refs = append(b.refs, cmdRef{i, ls.lineNo, cmd.Kind})
			cmd = Command{}
			if len(b.changes) == cap(b.changes) && !put() {
				return
			}
			continue
		}
		if len(b.changes) > 0 && (!put() || !get()) {
			return
		}
		b.cmd, b.ref = cmd, cmdRef{i, ls.lineNo, cmd.Kind}
		cmd = Command{}
		if !put() {
			return
		}
	}
	if b != nil {
		put()
	}
}

func (p *Parser) applyText(ctx context.Context, rn runner, text string, chunk int) (ApplyTextResult, error) {
	var (
		res ApplyTextResult
		bad SyntaxErrors
	)
	// The second reading starts at once, and is used if every line is
	// good.
	rd := p.read(text, nil, chunk)
	// The first reading: check every line, a large text in two halves
	// at once.
	res.Commands, bad = p.check(text)
	if len(bad) > 0 || res.Commands == 0 {
		rd.stop()
		if !p.ContinueOnError || res.Commands == 0 {
			if len(bad) > 0 && !p.ContinueOnError {
				return ApplyTextResult{}, bad
			}
			return res, badErr(bad, nil)
		}
		rd = p.read(text, bad, chunk)
	}
	defer rd.stop()

	// Run the batches as they come.
	for b := range rd.full {
		res.Failed = append(res.Failed, b.failed...)
		res.Run += len(b.failed)
		if len(b.changes) > 0 {
			errs, err := rn.Apply(ctx, b.changes)
			for i, e := range errs {
				if e != nil {
					r := b.refs[i]
					res.Failed = append(res.Failed, &CommandError{Index: r.index, Line: r.line, Kind: r.kind, Err: e})
				}
			}
			res.Run += len(b.changes)
			if err != nil {
				sortFailed(res.Failed)
				return res, badErr(bad, err)
			}
		}
		if b.ref.kind != 0 {
			if err := ctx.Err(); err != nil {
				sortFailed(res.Failed)
				return res, badErr(bad, err)
			}
			if err := run(ctx, rn, &b.cmd); err != nil {
				res.Failed = append(res.Failed, &CommandError{Index: b.ref.index, Line: b.ref.line, Kind: b.ref.kind, Err: err})
			}
			res.Run++
		}
		rd.free <- b
	}
	sortFailed(res.Failed)
	return res, badErr(bad, nil)
}

// checkSplit is the size of text that check reads in two halves at once.
const checkSplit = 64 << 10

// check parses every line of text, and returns the number of commands and
// the errors of the bad lines.
func (p *Parser) check(text string) (int, SyntaxErrors) {
	if len(text) < checkSplit {
		return p.checkLines(text, 0)
	}
	half := len(text) / 2
	if i := strings.IndexByte(text[half:], '\n'); i >= 0 {
		half += i + 1
	} else {
		half = len(text)
	}
	var (
		n2   int
		bad2 SyntaxErrors
		wg   sync.WaitGroup
	)
	wg.Go(func() { n2, bad2 = p.checkLines(text[half:], strings.Count(text[:half], "\n")) })
	n, bad := p.checkLines(text[:half], 0)
	wg.Wait()
	return n + n2, append(bad, bad2...)
}

// checkLines parses every line of text, numbered after the line first,
// into one Command.
func (p *Parser) checkLines(text string, first int) (int, SyntaxErrors) {
	var (
		cmd Command
		bad SyntaxErrors
	)
	n := 0
	ls := lines{text: text, lineNo: first}
	for ls.next() {
		if err := p.parse(&ls, &cmd); err != nil {
			bad = append(bad, ls.locate(err))
			continue
		}
		cmd = Command{}
		n++
	}
	return n, bad
}

// sortFailed puts the errors of a batch's lines that failed in the second
// reading in their place among the others.
func sortFailed(f []*CommandError) {
	slices.SortFunc(f, func(a, b *CommandError) int { return cmp.Compare(a.Index, b.Index) })
}

// badErr returns ApplyText's error: the bad lines' errors, if any, joined
// with err.
func badErr(bad SyntaxErrors, err error) error {
	switch {
	case len(bad) == 0:
		return err
	case err == nil:
		return bad
	}
	return errors.Join(err, bad)
}
