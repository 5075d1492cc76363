package ipvsrules

import (
	"fmt"
	"net/netip"

	"github.com/ipvs-go/ipvs"
)

// Desired returns the table that cmds make from an empty one, as
// ipvs.Client.Reconcile takes it: -A, -E and -D, -a, -e and -d, and -C
// applied in memory, in order, the services in the order they were created.
// -Z, --set and the daemon commands do not change the table and are
// skipped. A command the kernel would refuse on that table (a service or
// destination that exists already, or does not exist) is an error naming
// its line.
func Desired(cmds []Command) ([]ipvs.VirtualService, error) {
	var table []ipvs.VirtualService
	index := map[svcKey]int{}
	find := func(s ipvs.Service) (int, bool) {
		i, ok := index[keyOf(s)]
		return i, ok
	}
	for _, c := range cmds {
		switch c.Kind {
		case AddService:
			if _, ok := find(c.Service); ok {
				return nil, fmt.Errorf("ipvsrules: line %d: service %v exists already", c.Line, c.Service)
			}
			index[keyOf(c.Service)] = len(table)
			table = append(table, ipvs.VirtualService{Service: c.Service})
			continue
		case Clear:
			table, index = table[:0], map[svcKey]int{}
			continue
		case AddServer, EditServer, DeleteServer, EditService, DeleteService:
		default:
			continue
		}
		i, ok := find(c.Service)
		if !ok {
			return nil, fmt.Errorf("ipvsrules: line %d: no service %v", c.Line, c.Service)
		}
		v := &table[i]
		switch c.Kind {
		case EditService:
			v.Service = c.Service
			continue
		case DeleteService:
			table = append(table[:i], table[i+1:]...)
			delete(index, keyOf(c.Service))
			for k, j := range index {
				if j > i {
					index[k] = j - 1
				}
			}
			continue
		}
		j := -1
		for k, d := range v.Destinations {
			if d.Address == c.Destination.Address && d.Port == c.Destination.Port {
				j = k
				break
			}
		}
		switch {
		case c.Kind == AddServer && j >= 0:
			return nil, fmt.Errorf("ipvsrules: line %d: destination %v of %v exists already", c.Line, c.Destination, c.Service)
		case c.Kind == AddServer:
			v.Destinations = append(v.Destinations, c.Destination)
		case j < 0:
			return nil, fmt.Errorf("ipvsrules: line %d: no destination %v in %v", c.Line, c.Destination, c.Service)
		case c.Kind == EditServer:
			v.Destinations[j] = c.Destination
		default:
			v.Destinations = append(v.Destinations[:j], v.Destinations[j+1:]...)
		}
	}
	return table, nil
}

// svcKey is a service's identity.
type svcKey struct {
	addr  netip.Addr
	mark  uint32
	proto ipvs.Protocol
	port  uint16
	fam   ipvs.Family
}

func keyOf(s ipvs.Service) svcKey {
	if s.FirewallMark != 0 {
		return svcKey{mark: s.FirewallMark, fam: s.Family}
	}
	return svcKey{addr: s.Address, proto: s.Protocol, port: s.Port}
}
