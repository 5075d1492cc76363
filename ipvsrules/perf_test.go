package ipvsrules

import (
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/ipvs-go/ipvs"
)

// TestChangeTo checks that changeTo, which Apply and Changes use to write
// changes in place into a reused buffer, overwrites every field of a dirty
// slot and agrees with Change for every kind.
func TestChangeTo(t *testing.T) {
	want := map[Kind]ipvs.ChangeKind{
		AddService: ipvs.CreateService, EditService: ipvs.UpdateService, DeleteService: ipvs.DeleteService,
		AddServer: ipvs.CreateDestination, EditServer: ipvs.UpdateDestination, DeleteServer: ipvs.DeleteDestination,
	}
	svc := ipvs.Service{Protocol: ipvs.TCP, Address: netip.MustParseAddr("10.0.0.1"), Port: 80, Scheduler: "rr"}
	dst := ipvs.Destination{Address: netip.MustParseAddr("10.0.1.1"), Port: 8080, Weight: 3}
	dirty := ipvs.Change{Kind: ipvs.ChangeKind(99), Service: ipvs.Service{Scheduler: "old"}, Destination: ipvs.Destination{Weight: 7, Port: 1}}
	for k := Kind(0); k <= Version+1; k++ {
		// Destination is set on every kind: service changes must drop it.
		c := Command{Kind: k, Service: svc, Destination: dst, Line: 4}
		ch := dirty
		ok := c.changeTo(&ch)
		got, gotOK := c.Change()
		wk, isChange := want[k]
		if ok != isChange || gotOK != isChange || k.isChange() != isChange {
			t.Errorf("%v: changeTo %v, Change %v, isChange %v, want %v", k, ok, gotOK, k.isChange(), isChange)
			continue
		}
		if !isChange {
			if ch != dirty {
				t.Errorf("%v: changeTo wrote %+v for a non-change", k, ch)
			}
			continue
		}
		w := ipvs.Change{Kind: wk, Service: svc}
		if k == AddServer || k == EditServer || k == DeleteServer {
			w.Destination = dst
		}
		if ch != w || got != w {
			t.Errorf("%v: changeTo %#v, Change %#v, want %#v", k, ch, got, w)
		}
	}
}

// TestFindShort checks the short option index against a search of the
// table.
func TestFindShort(t *testing.T) {
	var st state
	for c := range 256 {
		var want *optDef
		for i := range optTable {
			if c != 0 && optTable[i].short == byte(c) {
				want = &optTable[i]
				break
			}
		}
		if got := st.findShort(byte(c)); got != want {
			t.Errorf("findShort(%q) = %v, want %v", rune(c), got, want)
		}
	}
}

// TestOptionMasks checks the quick check of genericOptCheck against the
// walk of commandsVsOptions: a command line fails the one if and only if it
// fails the other.
func TestOptionMasks(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for k, row := range commandsVsOptions {
		if row == "" {
			continue
		}
		m := optionMasks[k]
		for i := range 20000 {
			// Sparse sets, and the rows' own required options, so that
			// both outcomes are common.
			o := Options(rnd.Uint64()&rnd.Uint64()&rnd.Uint64()) & (1<<numIpvsadmOpts - 1)
			if i%2 == 0 {
				o |= m.required
			}
			st := state{cmd: Kind(k), options: o, args: make([]string, 1)}
			slow := st.optTableCheck(row) != nil
			quick := o&m.required != m.required || o&m.illegal != 0 || bits.OnesCount64(uint64(o&m.exclusive)) > 1
			if slow != quick {
				t.Fatalf("%v %v: table says error %v, masks %v", Kind(k), o, slow, quick)
			}
		}
	}
}
