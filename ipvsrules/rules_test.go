package ipvsrules

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/ipvs-go/ipvs"
)

func TestParseText(t *testing.T) {
	text := "# saved by ipvsadm-save\n" +
		"\n" +
		"ipvsadm -A -t 10.0.0.1:80 -s rr\r\n" +
		"  \t-a\t-t 10.0.0.1:80   -r 192.168.1.1:8080 -m ipvsadm -w 3  \n" +
		"   # indented comment\n" +
		"ipvsadm\n" +
		"-C\n" +
		"--set 900 120 300\n" +
		"-Z -t 10.0.0.1:80\n" +
		"--start-daemon master --mcast-interface lo\n" +
		"--stop-daemon master\n" +
		"-d -t 10.0.0.1:80 -r 192.168.1.1:8080 \t" // no newline, trailing blanks
	cmds, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	svc := tcp("10.0.0.1", 80)
	want := []Command{
		{Kind: AddService, Service: full(svc, func(s *ipvs.Service) { s.Scheduler = "rr" }), Options: svcOpts | OptScheduler, Line: 3},
		{Kind: AddServer, Service: svc, Destination: dest("192.168.1.1", 8080, ipvs.NAT, 3), Options: destOpts | OptForward | OptWeight, Line: 4},
		{Kind: Clear, Line: 7},
		{Kind: SetTimeouts, Timeouts: ipvs.Timeouts{TCP: secs(900), TCPFin: secs(120), UDP: secs(300)}, Line: 8},
		{Kind: Zero, Service: svc, Options: svcOpts, Line: 9},
		{Kind: StartDaemon, Daemon: ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"}, Options: OptMcastInterface, Line: 10},
		{Kind: StopDaemon, Daemon: ipvs.SyncDaemon{State: ipvs.Master}, Line: 11},
		{Kind: DeleteServer, Service: svc, Destination: ipvs.Destination{Address: addr("192.168.1.1"), Port: 8080}, Options: destOpts, Line: 12},
	}
	if diff := cmp.Diff(want, cmds, cmpAddr); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if _, err := Changes(cmds); err == nil || !strings.Contains(err.Error(), "line 7") {
		t.Errorf("Changes of a text with -C: %v, want an error naming line 7", err)
	}
	changes, err := Changes([]Command{cmds[0], cmds[1], cmds[7]})
	if err != nil {
		t.Fatal(err)
	}
	wantChanges := []ipvs.Change{
		{Kind: ipvs.CreateService, Service: want[0].Service},
		{Kind: ipvs.CreateDestination, Service: svc, Destination: want[1].Destination},
		{Kind: ipvs.DeleteDestination, Service: svc, Destination: want[7].Destination},
	}
	if diff := cmp.Diff(wantChanges, changes, cmpAddr); diff != "" {
		t.Errorf("Changes (-want +got):\n%s", diff)
	}
}

func TestParseTextErrors(t *testing.T) {
	text := "-A -t 10.0.0.1:80\n" +
		"-a -t 10.0.0.1:80 -r 10.1.0.1 -w 2147483648\n" +
		"-A -t 10.0.0.2:80 -s rr\n" +
		"  -a  -t 10.0.0.1:80 -r 10.1.0.2 -w\n" +
		"-L -n\n" +
		"-R\n" +
		"-a -t 10.0.0.1:80 -r 10.1.0.3 -m\n" +
		"-A -t 10.0.0.3:80 -s\x00rr\n" +
		"-E\n" +
		"# a comment -w x\n" +
		"-A -t 10.0.0.4:80 # not a comment\n"
	type pos struct {
		Line, Column int
		Word, Msg    string
	}
	want := []pos{
		{2, 34, "2147483648", "illegal weight specified"},
		{4, 34, "-w", "-w: missing argument"},
		{5, 1, "-L", "the list command prints: not in rules text"},
		{6, 1, "-R", "Try `ipvsadm -h' or 'ipvsadm --help' for more information."},
		{8, 19, "-s\x00rr", "a NUL byte"},
		{9, 1, "-E", "You need to supply the 'service-address' option for the 'edit-service' command"},
		{11, 19, "#", "unexpected argument #"},
	}
	for _, cont := range []bool{false, true} {
		p := Parser{ContinueOnError: cont}
		cmds, err := p.Parse(strings.NewReader(text))
		var errs SyntaxErrors
		if !errors.As(err, &errs) {
			t.Fatalf("Parse: %v, want SyntaxErrors", err)
		}
		var got []pos
		for _, e := range errs {
			got = append(got, pos{e.Line, e.Column, e.Word, e.Msg})
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		var first *SyntaxError
		if !errors.As(err, &first) || first != errs[0] {
			t.Errorf("errors.As(*SyntaxError) = %v", first)
		}
		if !cont && cmds != nil {
			t.Errorf("Parse returned %d commands with errors", len(cmds))
		}
		if cont {
			var lines []int
			for _, c := range cmds {
				lines = append(lines, c.Line)
			}
			if !cmp.Equal(lines, []int{1, 3, 7}) {
				t.Errorf("ContinueOnError: commands of lines %v, want 1, 3, 7", lines)
			}
		}
	}
	if got := (&SyntaxError{Line: 2, Column: 34, Msg: "illegal weight specified"}).Error(); got != "line 2, column 34: illegal weight specified" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&SyntaxError{Column: 3, Word: "-6", Msg: "-6 used before -f\n"}).Error(); got != `argument 3 ("-6"): -6 used before -f` {
		t.Errorf("Error() = %q", got)
	}
	if got := (SyntaxErrors{{Line: 1, Column: 1, Msg: "a"}, {Line: 2, Column: 2, Msg: "b"}}).Error(); got != "line 1, column 1: a\nline 2, column 2: b" {
		t.Errorf("SyntaxErrors.Error() = %q", got)
	}
	if _, err := Parse(iotest.ErrReader(errors.New("boom"))); err == nil || err.Error() != "boom" {
		t.Errorf("Parse of a failing reader: %v", err)
	}
}

func TestDesired(t *testing.T) {
	text := `-A -t 10.0.0.1:80 -s rr
-A -t 10.0.0.2:80
-a -t 10.0.0.1:80 -r 10.1.0.1 -m
-a -t 10.0.0.1:80 -r 10.1.0.2 -m
-a -t 10.0.0.2:80 -r 10.1.0.3 -m
-e -t 10.0.0.1:80 -r 10.1.0.2 -m -w 7
-d -t 10.0.0.1:80 -r 10.1.0.1
-E -t 10.0.0.1:80 -s sh
-D -t 10.0.0.2:80
-A -f 5
-Z
--set 1 2 3
`
	cmds, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Desired(cmds)
	if err != nil {
		t.Fatal(err)
	}
	want := []ipvs.VirtualService{
		{Service: full(tcp("10.0.0.1", 80), func(s *ipvs.Service) { s.Scheduler = "sh" }), Destinations: []ipvs.Destination{dest("10.1.0.2", 80, ipvs.NAT, 7)}},
		{Service: ipvs.Service{FirewallMark: 5, Family: ipvs.IPv4, Scheduler: "wlc"}},
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("Desired (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80 -s rr\n",
		"-a -t 10.0.0.1:80 -r 10.1.0.1\n",
		"-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1\n-a -t 10.0.0.1:80 -r 10.1.0.1\n",
		"-A -t 10.0.0.1:80\n-e -t 10.0.0.1:80 -r 10.1.0.1\n",
		"-A -t 10.0.0.1:80\n-C\n-D -t 10.0.0.1:80\n",
	} {
		cmds, err := Parse(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Desired(cmds); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("Desired(%q) = %v, want an error with a line", bad, err)
		}
	}
}
