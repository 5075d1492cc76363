package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// ipvsadmVersion is what ipvsadm 1.31 prints for -v and atop -h.
const ipvsadmVersion = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n"

// A cmd is one run of the command.
type cmd struct {
	prog           string
	stdin          io.Reader
	stdout, stderr io.Writer
	ext            extensions
	c              *ipvs.Client
	info           ipvs.Info
}

// extensions are the options beyond ipvsadm's, taken out of the command
// line before ipvsrules.ParseArgs reads the rest.
type extensions struct {
	netns     string
	json      bool
	dryRun    bool
	reconcile string // the rules file of --reconcile, "-" for stdin
	owns      []ownSpec
	given     []string // the extension options given, for error messages
}

// run is the whole command: args[0] is the program name, as ipvsadm
// prints it in its messages. It returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	prog := "ipvsadm"
	if len(args) > 0 {
		prog = args[0]
		args = args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &cmd{prog: prog, stdin: stdin, stdout: stdout, stderr: stderr}
	rest, err := m.ext.take(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s\n", err)
		return 2
	}
	return m.main(ctx, rest)
}

// take removes the extension options from args.
func (e *extensions) take(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(name, "--") {
			rest = append(rest, a)
			continue
		}
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "--netns":
			e.netns, err = value()
		case "--reconcile":
			e.reconcile, err = value()
		case "--owns":
			var v string
			if v, err = value(); err == nil {
				var o ownSpec
				if o, err = parseOwn(v); err == nil {
					e.owns = append(e.owns, o)
				}
			}
		case "--json", "--dry-run":
			if hasVal {
				return nil, fmt.Errorf("option %s takes no value", name)
			}
			if name == "--json" {
				e.json = true
			} else {
				e.dryRun = true
			}
		default:
			rest = append(rest, a)
			continue
		}
		if err != nil {
			return nil, err
		}
		e.given = append(e.given, name)
	}
	if e.reconcile == "" && (e.dryRun || len(e.owns) > 0) {
		return nil, errors.New("--dry-run and --owns go with --reconcile")
	}
	return rest, nil
}

// netnsPath is the file of --netns: a name under /run/netns, or a path.
func netnsPath(s string) string {
	if strings.ContainsRune(s, '/') {
		return s
	}
	return "/run/netns/" + s
}

func (m *cmd) main(ctx context.Context, args []string) int {
	// ipvsadm opens IPVS before it reads its command line.
	if st := m.open(ctx); st != 0 {
		return st
	}
	defer m.c.Close()

	if m.ext.reconcile != "" {
		if len(args) > 0 {
			fmt.Fprintf(m.stderr, "%s: --reconcile takes no ipvsadm command (%s)\n", m.prog, args[0])
			return 2
		}
		return m.reconcile(ctx)
	}

	p := m.parser()
	c, err := p.ParseArgs(args)
	if err != nil {
		return m.syntaxError(err)
	}
	if m.ext.json && c.Kind != ipvsrules.List {
		fmt.Fprintf(m.stderr, "Illegal 'json' option with the '%s' command\n", c.Kind)
		return 2
	}
	switch c.Kind {
	case ipvsrules.Help:
		io.WriteString(m.stdout, m.usage())
		return 0
	case ipvsrules.Version:
		io.WriteString(m.stdout, ipvsadmVersion)
		return 0
	case ipvsrules.List:
		return m.list(ctx, c)
	case ipvsrules.Save:
		return m.save(ctx, c)
	case ipvsrules.Restore:
		return m.restore(ctx)
	}
	errs, err := ipvsrules.Apply(ctx, m.c, []ipvsrules.Command{c})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "%s\n", kernelMessage(c.Kind, err))
		return 255
	}
	return 0
}

// parser is the ipvsrules.Parser of ipvsadm's lookups: host names
// through the system resolver (IPv4, as gethostbyname), service names
// through /etc/services or, without it, ipvsrules.WellKnownPort.
func (m *cmd) parser() *ipvsrules.Parser {
	p := &ipvsrules.Parser{
		LookupHost: func(name string) (netip.Addr, bool) {
			addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", name)
			if err != nil || len(addrs) == 0 {
				return netip.Addr{}, false
			}
			return addrs[0].Unmap(), true
		},
	}
	if f, err := os.Open("/etc/services"); err == nil {
		if lookup, err := ipvsrules.ServicesFile(f); err == nil {
			p.LookupPort = lookup
		}
		f.Close()
	}
	return p
}

// syntaxError prints a command line error as ipvsadm does.
func (m *cmd) syntaxError(err error) int {
	var se *ipvsrules.SyntaxError
	if !errors.As(err, &se) {
		fmt.Fprintf(m.stderr, "%s\n", err)
		return 2
	}
	msg := strings.TrimRight(se.Msg, "\n")
	if strings.HasPrefix(msg, "Try `ipvsadm -h'") {
		msg = fmt.Sprintf("Try `%s -h' or '%s --help' for more information.", m.prog, m.prog)
	}
	io.WriteString(m.stderr, msg+"\n")
	if strings.HasSuffix(se.Msg, "\n") {
		io.WriteString(m.stderr, "\n")
	}
	return se.Status
}

// open is ipvsadm's ipvs_init: connect, read the version, and if that
// fails load ip_vs with /sbin/modprobe and try again.
func (m *cmd) open(ctx context.Context) int {
	var opts []ipvs.Option
	if m.ext.netns != "" {
		f, err := os.Open(netnsPath(m.ext.netns))
		if err != nil {
			fmt.Fprintf(m.stderr, "%s: --netns: %v\n", m.prog, err)
			return 2
		}
		defer f.Close()
		opts = append(opts, ipvs.WithNetNS(int(f.Fd())))
	}
	try := func() error {
		c, err := ipvs.New(opts...)
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			c.Close()
			return err
		}
		m.c, m.info = c, info
		return nil
	}
	err := try()
	if err != nil && !errors.Is(err, os.ErrPermission) {
		// As ipvsadm's child, modprobe writes its complaints to our
		// standard streams.
		mp := exec.Command("/sbin/modprobe", "--", "ip_vs")
		mp.Stdout, mp.Stderr = m.stdout, m.stderr
		if mp.Run() == nil {
			err = try()
		}
	}
	if err != nil {
		fmt.Fprintf(m.stderr, "Can't initialize ipvs: %s\nAre you sure that IP Virtual Server is built in the kernel or as module?\n", initMessage(err))
		return 2
	}
	return 0
}

// initMessage is ipvs_strerror of ipvs_init's failure.
func initMessage(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrPermission):
		return "Permission denied (you must be root)"
	case errors.As(err, &errno) && errno == syscall.ENOENT:
		// No IPVS family: ipvsadm falls back to its socket options,
		// which the kernel does not know without ip_vs.
		return "Protocol not available"
	case errors.As(err, &errno):
		return strerror(0, errno)
	}
	return err.Error()
}

// kernelMessage is ipvsadm's ipvs_strerror for a command's failure.
func kernelMessage(k ipvsrules.Kind, err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return strerror(k, errno)
	}
	var ie *ipvs.Error
	if errors.As(err, &ie) && ie.Field != "" {
		// Refused before sending: what the kernel would have said.
		switch ie.Field {
		case "Destination.LowerThreshold", "Destination.Weight":
			return strerror(k, syscall.ERANGE)
		}
		return strerror(k, syscall.EINVAL) + " (" + ie.Error() + ")"
	}
	return err.Error()
}

func strerror(k ipvsrules.Kind, errno syscall.Errno) string {
	type key struct {
		k ipvsrules.Kind
		e syscall.Errno
	}
	if msg, ok := map[key]string{
		{ipvsrules.AddService, syscall.EEXIST}:   "Service already exists",
		{ipvsrules.AddService, syscall.ENOENT}:   "Scheduler or persistence engine not found",
		{ipvsrules.EditService, syscall.ESRCH}:   "No such service",
		{ipvsrules.EditService, syscall.ENOENT}:  "Scheduler or persistence engine not found",
		{ipvsrules.DeleteService, syscall.ESRCH}: "No such service",
		{ipvsrules.Zero, syscall.ESRCH}:          "No such service",
		{ipvsrules.AddServer, syscall.ESRCH}:     "Service not defined",
		{ipvsrules.AddServer, syscall.EEXIST}:    "Destination already exists",
		{ipvsrules.EditServer, syscall.ESRCH}:    "Service not defined",
		{ipvsrules.EditServer, syscall.ENOENT}:   "No such destination",
		{ipvsrules.DeleteServer, syscall.ESRCH}:  "Service not defined",
		{ipvsrules.DeleteServer, syscall.ENOENT}: "No such destination",
		{ipvsrules.StartDaemon, syscall.EEXIST}:  "Daemon has already run",
		{ipvsrules.StopDaemon, syscall.ESRCH}:    "No daemon is running",
		{ipvsrules.List, syscall.ESRCH}:          "No such service",
	}[key{k, errno}]; ok {
		return msg
	}
	switch errno {
	case syscall.EPERM:
		return "Permission denied (you must be root)"
	case syscall.EINVAL:
		return "Invalid operation.  Possibly wrong module version, address not unicast, ..."
	case syscall.ENOPROTOOPT:
		return "Protocol not available"
	case syscall.ENOMEM:
		return "Memory allocation problem"
	case syscall.EOPNOTSUPP:
		return "Operation not supported with IPv6"
	case syscall.EAFNOSUPPORT:
		return "Operation not supported with specified address family"
	case syscall.EMSGSIZE:
		return "Module is wrong version"
	}
	return cStrerror(errno)
}

// cStrerror is glibc's strerror: Go's messages are its, lower-cased.
func cStrerror(errno syscall.Errno) string {
	s := errno.Error()
	if s == "" {
		return fmt.Sprintf("Unknown error %d", int(errno))
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (m *cmd) usage() string {
	var b bytes.Buffer
	b.WriteString(ipvsadmVersion)
	b.WriteString(strings.ReplaceAll(usageText, "@PROG@", m.prog))
	b.WriteString(strings.ReplaceAll(extensionsText, "@PROG@", m.prog))
	return b.String()
}
