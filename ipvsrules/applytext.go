package ipvsrules

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipvs-go/ipvs"
)

// applyChunk is the most changes ApplyText gives one ipvs.Client.Apply.
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
// changes through c.Apply, in chunks of at most 1024; a command the kernel
// refuses does not stop the ones after it), without holding every Command:
// a first reading of the text checks every line, a second parses the
// lines again, one chunk at a time, and runs each chunk. Its memory is the
// text and one chunk, where Parse and Apply take about 300 bytes per
// command more. This is the way to restore a saved table, as ipvsadm -R
// does.
//
// If a line is bad, nothing is run, and the error is SyntaxErrors with
// every bad line, as from Parse; with p.ContinueOnError the good lines are
// run and the SyntaxErrors returned after (joined with an exchange's error,
// if one failed). LookupHost and LookupPort, if set, are called once per
// reading.
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
	return p.applyText(ctx, c, text, applyChunk)
}

// cmdRef is a command of the chunk being run, for its error.
type cmdRef struct {
	index, line int
	kind        Kind
}

func (p *Parser) applyText(ctx context.Context, rn runner, text string, chunk int) (ApplyTextResult, error) {
	var (
		res ApplyTextResult
		cmd Command
		bad SyntaxErrors
	)
	// The first reading: check every line, into one Command.
	ls := lines{text: text}
	for ls.next() {
		if err := p.parseLine(ls.args, &cmd); err != nil {
			bad = append(bad, ls.locate(err))
			continue
		}
		cmd = Command{}
		res.Commands++
	}
	if len(bad) > 0 && !p.ContinueOnError {
		return ApplyTextResult{}, bad
	}
	if res.Commands == 0 {
		return res, badErr(bad, nil)
	}

	// The second reading: parse again and run, a chunk of changes at a
	// time.
	n := min(chunk, res.Commands)
	changes := make([]ipvs.Change, 0, n)
	refs := make([]cmdRef, 0, n)
	flush := func() error {
		if len(changes) == 0 {
			return nil
		}
		errs, err := rn.Apply(ctx, changes)
		for i, e := range errs {
			if e != nil {
				r := refs[i]
				res.Failed = append(res.Failed, &CommandError{Index: r.index, Line: r.line, Kind: r.kind, Err: e})
			}
		}
		res.Run += len(changes)
		changes, refs = changes[:0], refs[:0]
		return err
	}
	ls = lines{text: text, args: ls.args[:0], cols: ls.cols[:0]}
	nextBad, index := 0, 0
	for ls.next() {
		if nextBad < len(bad) && bad[nextBad].Line == ls.lineNo {
			nextBad++
			continue
		}
		i := index
		index++
		if err := p.parseLine(ls.args, &cmd); err != nil {
			// A lookup answered otherwise than in the first reading.
			res.Failed = append(res.Failed, &CommandError{Index: i, Line: ls.lineNo, Err: ls.locate(err)})
			continue
		}
		if cmd.Kind.isChange() {
			changes = changes[:len(changes)+1]
			cmd.changeTo(&changes[len(changes)-1])
			refs = append(refs, cmdRef{i, ls.lineNo, cmd.Kind})
			cmd = Command{}
			if len(changes) == cap(changes) {
				if err := flush(); err != nil {
					return res, badErr(bad, err)
				}
			}
			continue
		}
		if err := flush(); err != nil {
			return res, badErr(bad, err)
		}
		if err := ctx.Err(); err != nil {
			return res, badErr(bad, err)
		}
		if err := run(ctx, rn, &cmd); err != nil {
			res.Failed = append(res.Failed, &CommandError{Index: i, Line: ls.lineNo, Kind: cmd.Kind, Err: err})
		}
		res.Run++
		cmd = Command{}
	}
	return res, badErr(bad, flush())
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
