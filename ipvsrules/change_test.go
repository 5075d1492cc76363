package ipvsrules

import (
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
