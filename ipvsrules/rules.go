package ipvsrules

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/ipvs-go/ipvs"
)

// Parse parses rules text, what "ipvsadm -R" reads, with the zero Parser.
func Parse(r io.Reader) ([]Command, error) {
	var p Parser
	return p.Parse(r)
}

// Parse parses rules text: one ipvsadm command line per line, split into
// words at spaces, tabs and carriage returns, with every word "ipvsadm"
// dropped (so "ipvsadm -A -t ..." lines are taken too), as ipvsadm 1.31's
// -R does. Blank lines, and lines whose first word starts with "#" (which
// ipvsadm -R refuses, but its ipvsadm-restore script removes), are
// skipped. A line may hold any command ipvsadm runs in -R but -L, -S, -R,
// -h and -v, which would print.
//
// Every bad line is reported, as SyntaxErrors, with line and column; then
// no command is returned, unless p.ContinueOnError is set. Parse reads r
// to its end; an error reading it is returned as it is.
func (p *Parser) Parse(r io.Reader) ([]Command, error) {
	text, err := readString(r)
	if err != nil {
		return nil, err
	}
	// One command per line at most, allocated once.
	cmds := make([]Command, strings.Count(text, "\n")+1)
	n, errs := p.parseText(text, 1, cmds)
	cmds = cmds[:n:n]
	if len(errs) > 0 {
		if !p.ContinueOnError {
			return nil, errs
		}
		return cmds, errs
	}
	return cmds, nil
}

// parseText parses the lines of text, the first numbered line, into out,
// which has room for one command per line. It returns the number of
// commands and the errors.
func (p *Parser) parseText(text string, lineNo int, out []Command) (int, SyntaxErrors) {
	var errs SyntaxErrors
	n := 0
	ls := lines{text: text, lineNo: lineNo - 1}
	for ls.next() {
		c := &out[n]
		if err := p.parse(&ls, c); err != nil {
			errs = append(errs, ls.locate(err))
			continue
		}
		c.Line = ls.lineNo
		n++
	}
	return n, errs
}

// blank are the bytes that separate words: space, tab and carriage return.
var blank = [256]bool{' ': true, '\t': true, '\r': true}

// lines splits rules text into lines and words, skipping blank and comment
// lines. A line that starts with "-" is split into words only when asked
// (split), since the quick parse needs no words.
type lines struct {
	text   string // what is left
	lineNo int    // the line's number
	line   string // the line
	split  bool   // args and cols are the line's
	args   []string
	cols   []int // each word's column
}

// next moves to the next line that has words and is not a comment; it
// reports false at the end of the text.
func (ls *lines) next() bool {
	for len(ls.text) > 0 {
		ls.lineNo++
		line := ls.text
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line, ls.text = line[:i], line[i+1:]
		} else {
			ls.text = ""
		}
		ls.line, ls.split = line, false
		if line != "" && line[0] == '-' {
			return true
		}
		ls.words()
		if len(ls.args) == 0 || ls.args[0][0] == '#' {
			continue
		}
		return true
	}
	return false
}

// words splits the line into args and cols.
func (ls *lines) words() {
	line := ls.line
	args, cols := ls.args[:0], ls.cols[:0]
	for i := 0; i < len(line); {
		if blank[line[i]] {
			i++
			continue
		}
		j := i + 1
		for j < len(line) && !blank[line[j]] {
			j++
		}
		if w := line[i:j]; w != "ipvsadm" {
			args = append(args, w)
			cols = append(cols, i+1)
		}
		i = j
	}
	ls.args, ls.cols, ls.split = args, cols, true
}

// parse parses the line into c, which must be the zero Command, as
// parseLine does, trying the quick parse first.
func (p *Parser) parse(ls *lines, c *Command) error {
	if !ls.split {
		if p.quick(ls.line, c) {
			return nil
		}
		ls.words()
	}
	return p.parseLine(ls.args, c)
}

// locate sets the line and column in the text of an error of parseLine
// for the current line.
func (ls *lines) locate(err error) *SyntaxError {
	e := err.(*SyntaxError)
	e.Line = ls.lineNo
	if i := e.Column - 1; i >= 0 && i < len(ls.cols) {
		e.Column = ls.cols[i]
	} else {
		e.Column = len(ls.line) + 1
	}
	return e
}

// readString reads r to its end into one string, which the words of the
// text are then slices of: no copy per word, and, when r tells its length
// (a bytes.Reader or strings.Reader does, an *os.File of a regular file
// through Stat), no copy at all beyond the one.
func readString(r io.Reader) (string, error) {
	var b strings.Builder
	switch r := r.(type) {
	case interface{ Len() int }:
		b.Grow(r.Len())
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := r.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && fi.Size() < 1<<30 {
			b.Grow(int(fi.Size()))
		}
	}
	if _, err := io.Copy(&b, r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// parseLine parses the words of one line of rules text into c, which must
// be the zero Command; after an error c is the zero Command again.
func (p *Parser) parseLine(args []string, c *Command) error {
	err := p.parseLine1(args, c)
	if err != nil {
		*c = Command{}
	}
	return err
}

func (p *Parser) parseLine1(args []string, c *Command) error {
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return &SyntaxError{Column: i + 1, Word: a, Msg: "a NUL byte", Status: 1}
		}
	}
	if err := p.parseInto(args, c); err != nil {
		return err
	}
	switch c.Kind {
	case Restore:
		// ipvsadm -R refuses to recurse.
		return &SyntaxError{Column: 1, Word: args[0], Msg: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.", Status: 255}
	case List, Save, Help, Version:
		return &SyntaxError{Column: 1, Word: args[0], Msg: fmt.Sprintf("the %s command prints: not in rules text", c.Kind), Status: 1}
	}
	return nil
}

// Changes returns the changes of cmds, in order, for one ipvs.Client.Apply.
// It fails, naming the line, if a command is not a change (-C, -Z, --set,
// a daemon command): run those with Apply.
func Changes(cmds []Command) ([]ipvs.Change, error) {
	out := make([]ipvs.Change, len(cmds))
	for i := range cmds {
		if !cmds[i].changeTo(&out[i]) {
			return nil, fmt.Errorf("ipvsrules: line %d: %s is not a change for Apply", cmds[i].Line, cmds[i].Kind)
		}
	}
	return out, nil
}

// Apply runs cmds through c in order, as ipvsadm -R runs them: each run of
// consecutive changes in one c.Apply, -C as c.Flush, -Z as c.ZeroAll or
// c.ZeroService, --set as c.SetTimeouts, --start-daemon and --stop-daemon
// as c.StartSyncDaemon and c.StopSyncDaemon. As in ipvsadm -R, a command
// the kernel refuses does not stop the ones after it.
//
// It returns one error per command (nil if it succeeded), and a non-nil
// error if an exchange failed or ctx ended: the commands not run then carry
// that error too.
func Apply(ctx context.Context, c *ipvs.Client, cmds []Command) ([]error, error) {
	return apply(ctx, c, cmds, applyChunk)
}

func apply(ctx context.Context, c runner, cmds []Command, chunk int) ([]error, error) {
	errs := make([]error, len(cmds))
	// Runs of changes go to c.Apply in chunks, through one buffer: the
	// changes are never all copied at once.
	var changes []ipvs.Change
	for i := 0; i < len(cmds); {
		if !cmds[i].Kind.isChange() {
			if err := ctx.Err(); err != nil {
				return errs, fail(errs[i:], err)
			}
			errs[i] = run(ctx, c, &cmds[i])
			i++
			continue
		}
		if changes == nil {
			changes = make([]ipvs.Change, 0, min(chunk, len(cmds)-i))
		}
		changes = changes[:0]
		j := i
		for ; j < len(cmds) && len(changes) < chunk && cmds[j].Kind.isChange(); j++ {
			if len(changes) < cap(changes) {
				changes = changes[:len(changes)+1]
			} else {
				changes = append(changes, ipvs.Change{})
			}
			cmds[j].changeTo(&changes[len(changes)-1])
		}
		cerrs, err := c.Apply(ctx, changes)
		copy(errs[i:j], cerrs)
		if err != nil {
			return errs, fail(errs[j:], err)
		}
		i = j
	}
	return errs, nil
}

// fail sets every error of errs, the commands not run, to err.
func fail(errs []error, err error) error {
	for k := range errs {
		errs[k] = err
	}
	return err
}

// runner is what Apply and ApplyText run commands through: an *ipvs.Client,
// or a fake in tests.
type runner interface {
	Apply(ctx context.Context, changes []ipvs.Change) ([]error, error)
	Flush(ctx context.Context) error
	ZeroAll(ctx context.Context) error
	ZeroService(ctx context.Context, s ipvs.Service) error
	SetTimeouts(ctx context.Context, t ipvs.Timeouts) error
	StartSyncDaemon(ctx context.Context, d ipvs.SyncDaemon) error
	StopSyncDaemon(ctx context.Context, state ipvs.DaemonState) error
}

// run runs a command that is not a change.
func run(ctx context.Context, c runner, cmd *Command) error {
	switch cmd.Kind {
	case Clear:
		return c.Flush(ctx)
	case Zero:
		if cmd.Options.Has(OptService) {
			return c.ZeroService(ctx, cmd.Service)
		}
		return c.ZeroAll(ctx)
	case SetTimeouts:
		return c.SetTimeouts(ctx, cmd.Timeouts)
	case StartDaemon:
		return c.StartSyncDaemon(ctx, cmd.Daemon)
	case StopDaemon:
		return c.StopSyncDaemon(ctx, cmd.Daemon.State)
	}
	return fmt.Errorf("ipvsrules: line %d: the %s command is not run by Apply", cmd.Line, cmd.Kind)
}
