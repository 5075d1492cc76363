package healthcheck

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

func oneCheck(c Check) []Check {
	if c.Probe == nil {
		c.Probe = never
	}
	return []Check{c}
}

// A destination goes down after Retries+1 failures in a row, RetryDelay
// apart; one success in between resets the count; its weight goes to 0
// (inhibit) and comes back on success.
func TestRetriesThenDown(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 5), Checks: oneCheck(Check{Interval: 10 * time.Second, Retries: 2, RetryDelay: 2 * time.Second})},
		{Destination: dest("10.0.2.2:80", 5), Checks: oneCheck(Check{})},
	}}}, Options{})
	s.wantWeight(svc, "10.0.2.1:80", 5)
	_, c := s.check(0, "10.0.2.1:80", 0)

	s.result("10.0.2.1:80", 0, errDown)
	s.result("10.0.2.1:80", 0, nil) // resets the count
	for i := range 2 {
		s.result("10.0.2.1:80", 0, errDown)
		if want := s.now.Add(2 * time.Second); !c.next.Equal(want) {
			t.Fatalf("failure %d: next check at %v, want RetryDelay later (%v)", i+1, c.next, want)
		}
		s.wantWeight(svc, "10.0.2.1:80", 5)
	}
	if ev := s.takeEvents(); len(ev) != 0 {
		t.Fatalf("events before the last retry: %v", ev)
	}
	s.result("10.0.2.1:80", 0, errDown)
	s.wantWeight(svc, "10.0.2.1:80", 0)
	if want := s.now.Add(10 * time.Second); !c.next.Equal(want) {
		t.Errorf("after going down: next check at %v, want Interval later (%v)", c.next, want)
	}
	ev := s.takeEvents()
	if len(ev) != 1 || ev[0].Kind != Down || ev[0].Weight != 0 || ev[0].Removed || !errors.Is(ev[0].Err, errDown) || ev[0].Check != "func" {
		t.Fatalf("events = %v, want one Down with weight 0 and the check's error", ev)
	}
	// Down, failures stay Interval apart.
	s.result("10.0.2.1:80", 0, errDown)
	if want := s.now.Add(10 * time.Second); !c.next.Equal(want) {
		t.Errorf("failing while down: next check at %v, want %v", c.next, want)
	}
	s.result("10.0.2.1:80", 0, nil)
	s.wantWeight(svc, "10.0.2.1:80", 5)
	if ev := s.takeEvents(); len(ev) != 1 || ev[0].Kind != Up || ev[0].Weight != 5 {
		t.Fatalf("events = %v, want one Up with weight 5", ev)
	}
	s.wantWeight(svc, "10.0.2.2:80", 5)
}

// Rise successes bring a failed check back; all checks must pass.
func TestRiseAndAllChecks(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 3), Checks: []Check{
			{Name: "a", Probe: never, Rise: 3},
			{Name: "b", Probe: never},
		}},
	}}}, Options{})
	s.result("10.0.2.1:80", 0, errDown)
	s.wantWeight(svc, "10.0.2.1:80", 0)
	s.result("10.0.2.1:80", 1, errDown)
	s.result("10.0.2.1:80", 0, nil)
	s.result("10.0.2.1:80", 0, nil)
	s.result("10.0.2.1:80", 0, nil) // a is up again, b is not
	s.wantWeight(svc, "10.0.2.1:80", 0)
	s.result("10.0.2.1:80", 1, nil)
	s.wantWeight(svc, "10.0.2.1:80", 3)
	// a: two successes, one failure, two: not three in a row.
	s.result("10.0.2.1:80", 0, errDown)
	s.result("10.0.2.1:80", 0, nil)
	s.result("10.0.2.1:80", 0, nil)
	s.result("10.0.2.1:80", 0, errDown)
	s.result("10.0.2.1:80", 0, nil)
	s.result("10.0.2.1:80", 0, nil)
	s.wantWeight(svc, "10.0.2.1:80", 0)
	s.result("10.0.2.1:80", 0, nil)
	s.wantWeight(svc, "10.0.2.1:80", 3)
}

// Remove deletes a failed destination and creates it again; Alpha starts
// it down: absent with Remove, at weight 0 without.
func TestRemoveAndAlpha(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 2), Checks: oneCheck(Check{}), Remove: true},
		{Destination: dest("10.0.2.2:80", 2), Checks: oneCheck(Check{}), Alpha: true},
		{Destination: dest("10.0.2.3:80", 2), Checks: oneCheck(Check{}), Alpha: true, Remove: true},
	}}}, Options{})
	if got := k.takeCalls(); len(got) != 2 || got[0][0].Kind != ipvs.CreateService {
		t.Fatalf("start: Apply calls %v, want the service's creation then the destinations", got)
	}
	s.wantWeight(svc, "10.0.2.1:80", 2)
	s.wantWeight(svc, "10.0.2.2:80", 0)
	s.wantWeight(svc, "10.0.2.3:80", -1)

	s.result("10.0.2.1:80", 0, errDown)
	s.wantWeight(svc, "10.0.2.1:80", -1)
	if ev := destEvents(s.takeEvents()); len(ev) != 1 || !ev[0].Removed {
		t.Errorf("events = %v, want one Down, removed", ev)
	}
	s.result("10.0.2.1:80", 0, nil)
	s.wantWeight(svc, "10.0.2.1:80", 2)
	s.result("10.0.2.2:80", 0, nil)
	s.wantWeight(svc, "10.0.2.2:80", 2)
	s.result("10.0.2.3:80", 0, nil)
	s.wantWeight(svc, "10.0.2.3:80", 2)
}

// A Monitor started over a table the last one left takes nothing live out:
// the kernel's weights are its starting state, Alpha or not.
func TestRestartKeepsLiveDestinations(t *testing.T) {
	k := newFakeKernel()
	other := ipvs.Service{Protocol: ipvs.TCP, Address: svc.Address, Port: 443, Scheduler: "rr"}
	k.svcs[identity(svc)] = []ipvs.Destination{dest("10.0.2.1:80", 4), dest("10.0.2.2:80", 0), dest("10.0.2.9:80", 1)}
	k.svcs[identity(other)] = []ipvs.Destination{dest("10.0.2.1:443", 1)}
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 4), Checks: oneCheck(Check{}), Alpha: true},
		{Destination: dest("10.0.2.2:80", 4), Checks: oneCheck(Check{Rise: 2})},
	}}}, Options{})
	if got := k.takeCalls(); len(got) != 0 {
		t.Fatalf("start changed the kernel: %v", got)
	}
	if ev := s.takeEvents(); len(ev) != 0 {
		t.Fatalf("start: events %v", ev)
	}
	// 10.0.2.2 was down: it needs its Rise.
	s.result("10.0.2.2:80", 0, nil)
	s.wantWeight(svc, "10.0.2.2:80", 0)
	s.result("10.0.2.2:80", 0, nil)
	s.wantWeight(svc, "10.0.2.2:80", 4)
	// The destination and the service it was not given are untouched.
	s.result("10.0.2.1:80", 0, errDown)
	s.wantWeight(svc, "10.0.2.9:80", 1)
	if w := k.weight(other, "10.0.2.1:443"); w != 1 {
		t.Errorf("other service's destination: weight %d", w)
	}
	for _, call := range k.takeCalls() {
		for _, ch := range call {
			if identity(ch.Service) != identity(svc) || ch.Destination.Address.String() == "10.0.2.9" {
				t.Errorf("change to something not given: %v", ch)
			}
		}
	}
}

// The quorum with hysteresis: lost below Quorum-Hysteresis, back at
// Quorum+Hysteresis; the sorry server comes in before the destinations go,
// and goes after they are back.
func TestQuorumHysteresisSorry(t *testing.T) {
	k := newFakeKernel()
	sorry := dest("10.0.9.9:80", 1)
	var ds []Destination
	addrs := []string{"10.0.2.1:80", "10.0.2.2:80", "10.0.2.3:80", "10.0.2.4:80"}
	for _, a := range addrs {
		ds = append(ds, Destination{Destination: dest(a, 1), Checks: oneCheck(Check{})})
	}
	s := newSim(t, k, []Service{{Service: svc, Destinations: ds, Quorum: 3, Hysteresis: 1, Sorry: &sorry}}, Options{})
	k.takeCalls()
	s.result(addrs[0], 0, errDown) // 3 live
	s.result(addrs[1], 0, errDown) // 2 live: not below 3-1
	s.wantWeight(svc, "10.0.9.9:80", -1)
	for _, e := range s.takeEvents() {
		if e.Kind == QuorumLost {
			t.Fatalf("quorum lost at 2 live: %v", e)
		}
	}
	k.takeCalls()
	s.result(addrs[2], 0, errDown) // 1 live: lost
	s.wantWeight(svc, "10.0.9.9:80", 1)
	s.wantWeight(svc, addrs[3], 0) // the live one is out too, as in keepalived
	ev := s.takeEvents()
	if len(ev) != 2 || ev[1].Kind != QuorumLost || ev[1].LiveWeight != 1 {
		t.Fatalf("events = %v, want Down then QuorumLost at live weight 1", ev)
	}
	calls := k.takeCalls()
	if len(calls) != 1 || calls[0][0].Kind != ipvs.CreateDestination || calls[0][0].Destination != sorry {
		t.Fatalf("Apply calls = %v, want one call creating the sorry server first", calls)
	}
	s.result(addrs[0], 0, nil) // 2 live: not yet 3+1
	s.result(addrs[1], 0, nil) // 3 live
	s.wantWeight(svc, "10.0.9.9:80", 1)
	s.wantWeight(svc, addrs[0], 0)
	k.takeCalls()
	s.result(addrs[2], 0, nil) // 4 live: back
	s.wantWeight(svc, "10.0.9.9:80", -1)
	for _, a := range addrs {
		s.wantWeight(svc, a, 1)
	}
	calls = k.takeCalls()
	if n := len(calls); n != 1 || calls[0][len(calls[0])-1].Kind != ipvs.DeleteDestination {
		t.Fatalf("Apply calls = %v, want one call deleting the sorry server last", calls)
	}
	if ev := s.takeEvents(); ev[len(ev)-1].Kind != QuorumGained {
		t.Errorf("events = %v, want QuorumGained last", ev)
	}
}

// Without a sorry server, losing every destination loses the quorum (1 by
// default) and nothing else changes.
func TestQuorumDefault(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 1), Checks: oneCheck(Check{})},
	}}}, Options{})
	s.result("10.0.2.1:80", 0, errDown)
	ev := s.takeEvents()
	if len(ev) != 2 || ev[0].Kind != Down || ev[1].Kind != QuorumLost {
		t.Fatalf("events = %v", ev)
	}
	s.result("10.0.2.1:80", 0, nil)
	ev = s.takeEvents()
	if len(ev) != 2 || ev[0].Kind != Up || ev[1].Kind != QuorumGained {
		t.Fatalf("events = %v", ev)
	}
}

// The depool threshold keeps half of the destinations in, whatever their
// checks say; a held one goes out when another comes back.
func TestDepoolThreshold(t *testing.T) {
	k := newFakeKernel()
	addrs := []string{"10.0.2.1:80", "10.0.2.2:80", "10.0.2.3:80", "10.0.2.4:80"}
	var ds []Destination
	for _, a := range addrs {
		ds = append(ds, Destination{Destination: dest(a, 1), Checks: oneCheck(Check{})})
	}
	s := newSim(t, k, []Service{{Service: svc, Destinations: ds, DepoolThreshold: 0.5}}, Options{})
	for _, a := range addrs {
		s.result(a, 0, errDown)
	}
	want := []int{0, 0, 1, 1}
	for i, a := range addrs {
		s.wantWeight(svc, a, want[i])
	}
	ev := s.takeEvents()
	held := 0
	for _, e := range ev {
		if e.Kind == Down && e.Held {
			held++
			if e.Weight != 1 {
				t.Errorf("held event %v: weight %d, want 1", e, e.Weight)
			}
		}
	}
	if held != 2 {
		t.Errorf("events = %v, want 2 Down events with Held", ev)
	}
	s.result(addrs[0], 0, nil)
	s.wantWeight(svc, addrs[0], 1)
	s.wantWeight(svc, addrs[2], 0)
	s.wantWeight(svc, addrs[3], 1)
	ev = destEvents(s.takeEvents())
	if len(ev) != 2 || ev[1].Kind != Down || ev[1].Held || ev[1].Destination != ds[2].Destination {
		t.Errorf("events = %v, want Up, then Down without Held for the first held", ev)
	}
}

// Flap damping: the third down within a half-life holds the destination
// down although its checks pass, until the penalty decays.
func TestFlapDamping(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 1), Checks: oneCheck(Check{})},
	}}}, Options{Damping: Damping{HalfLife: time.Minute}})
	for range 2 {
		s.result("10.0.2.1:80", 0, errDown)
		s.advance(time.Second)
		s.result("10.0.2.1:80", 0, nil)
		s.wantWeight(svc, "10.0.2.1:80", 1)
		s.advance(time.Second)
	}
	s.result("10.0.2.1:80", 0, errDown) // penalty about 2.95: not yet
	s.advance(time.Second)
	s.result("10.0.2.1:80", 0, nil)
	s.wantWeight(svc, "10.0.2.1:80", 1)
	s.result("10.0.2.1:80", 0, errDown) // the fourth: suppressed
	s.takeEvents()
	s.advance(time.Second)
	s.result("10.0.2.1:80", 0, nil)
	s.wantWeight(svc, "10.0.2.1:80", 0)
	d, _ := s.check(0, "10.0.2.1:80", 0)
	if !d.suppressed {
		t.Fatalf("not suppressed, penalty %.2f", d.penalty)
	}
	reuse := s.m.damping.reuseAt(d)
	if dt := reuse.Sub(s.now); dt < time.Minute || dt > 2*time.Minute {
		t.Errorf("reuse in %v, want between one and two half-lives", dt)
	}
	s.advance(reuse.Sub(s.now) - time.Second)
	s.wantWeight(svc, "10.0.2.1:80", 0)
	s.advance(time.Second)
	s.wantWeight(svc, "10.0.2.1:80", 1)
	ev := destEvents(s.takeEvents())
	if len(ev) != 1 || ev[0].Kind != Up {
		t.Errorf("events = %v, want one Up", ev)
	}
}

// A dynamic check sets the weight (the lowest of several), and the quorum
// counts it.
func TestDynamicWeight(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 10), Checks: []Check{{Probe: never}, {Probe: never}}},
	}}}, Options{})
	s.resultW("10.0.2.1:80", 0, 7, nil)
	s.wantWeight(svc, "10.0.2.1:80", 7)
	s.resultW("10.0.2.1:80", 1, 3, nil)
	s.wantWeight(svc, "10.0.2.1:80", 3)
	s.resultW("10.0.2.1:80", 1, KeepWeight, nil) // unchanged
	s.wantWeight(svc, "10.0.2.1:80", 3)
	s.resultW("10.0.2.1:80", 1, 0, nil) // up at weight 0: no live weight
	s.wantWeight(svc, "10.0.2.1:80", 0)
	if ev := s.takeEvents(); len(ev) != 1 || ev[0].Kind != QuorumLost {
		t.Errorf("events = %v, want QuorumLost", ev)
	}
}

// A change the kernel refuses is an ApplyFailed event and is sent again;
// a destination someone deleted is created again.
func TestApplyFailureRetried(t *testing.T) {
	k := newFakeKernel()
	s := newSim(t, k, []Service{{Service: svc, Destinations: []Destination{
		{Destination: dest("10.0.2.1:80", 2), Checks: oneCheck(Check{})},
	}}}, Options{})
	k.fail = func(ipvs.Change) error { return &ipvs.Error{Op: "update destination", Err: os.ErrPermission} }
	s.result("10.0.2.1:80", 0, errDown)
	ev := destEvents(s.takeEvents())
	if len(ev) != 2 || ev[1].Kind != ApplyFailed || !errors.Is(ev[1].Err, os.ErrPermission) {
		t.Fatalf("events = %v, want Down then ApplyFailed", ev)
	}
	s.wantWeight(svc, "10.0.2.1:80", 2)
	k.fail = nil
	s.advance(time.Second)
	s.wantWeight(svc, "10.0.2.1:80", 0)

	// Deleted behind the monitor's back: the update fails with ENOENT,
	// the next step creates it.
	k.svcs[identity(svc)] = nil
	s.result("10.0.2.1:80", 0, nil)
	s.advance(time.Second)
	s.wantWeight(svc, "10.0.2.1:80", 2)
}

func TestNewValidates(t *testing.T) {
	k := newFakeKernel()
	sorry := dest("10.0.2.1:80", 1)
	for _, tc := range []struct {
		field string
		svcs  []Service
		opts  Options
	}{
		{"Services[0].Destinations[0].Checks[0].Probe", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{}}}}}}, Options{}},
		{"Services[0].Destinations[0].Checks[0].Interval", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{Probe: TCP{}, Interval: -1}}}}}}, Options{}},
		{"Services[0].Destinations[0].Checks[0].Probe.Status[0]", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{Probe: &HTTP{Status: []StatusRange{{300, 200}}}}}}}}}, Options{}},
		{"Services[0].Destinations[0].Checks[0].Probe.BodyMD5", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{Probe: HTTP{BodyMD5: "xyz"}}}}}}}, Options{}},
		{"Services[0].Destinations[0].Checks[0].Probe.Name", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{Probe: DNS{Name: "a..b"}}}}}}}, Options{}},
		{"Services[0].Destinations[0].Checks[0].Probe.Path", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1), Checks: []Check{{Probe: Command{}}}}}}}, Options{}},
		{"Services[0].Destinations[1]", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1)}, {Destination: dest("10.0.2.1:80", 2)}}}}, Options{}},
		{"Services[0].Destinations[0].Weight", []Service{{Service: svc, Destinations: []Destination{{Destination: dest("10.0.2.1:80", -1)}}}}, Options{}},
		{"Services[0].DepoolThreshold", []Service{{Service: svc, DepoolThreshold: 1.5}}, Options{}},
		{"Services[0].Quorum", []Service{{Service: svc, Quorum: -1}}, Options{}},
		{"Services[0].Sorry", []Service{{Service: svc, Sorry: &sorry, Destinations: []Destination{{Destination: dest("10.0.2.1:80", 1)}}}}, Options{}},
		{"Services[1]", []Service{{Service: svc}, {Service: svc}}, Options{}},
		{"Options.Damping", nil, Options{Damping: Damping{HalfLife: time.Second, Suppress: 2, Reuse: 2}}},
		{"Options.MaxInFlight", nil, Options{MaxInFlight: -1}},
	} {
		_, err := New(k, tc.svcs, tc.opts)
		var e *ipvs.Error
		if !errors.As(err, &e) || e.Field != tc.field || !errors.Is(err, os.ErrInvalid) {
			t.Errorf("New(%s): %v, want an invalid-input *ipvs.Error for that field", tc.field, err)
		} else if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("error %q does not name %s", err, tc.field)
		}
	}
}

// destEvents drops the quorum events.
func destEvents(ev []Event) []Event {
	var out []Event
	for _, e := range ev {
		if e.Kind != QuorumLost && e.Kind != QuorumGained {
			out = append(out, e)
		}
	}
	return out
}
