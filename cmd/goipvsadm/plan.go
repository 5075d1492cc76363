package main

import (
	"bytes"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// identity is the part of a service that names it.
func identity(s ipvs.Service) ipvs.Service {
	if s.FirewallMark != 0 {
		return ipvs.Service{FirewallMark: s.FirewallMark, Family: s.Family}
	}
	return ipvs.Service{Protocol: s.Protocol, Address: s.Address, Port: s.Port}
}

type destKey struct {
	addr [16]byte
	v4   bool
	port uint16
}

func destIdentity(d ipvs.Destination) destKey {
	return destKey{d.Address.As16(), d.Address.Is4(), d.Port}
}

// plan returns the changes that make cur equal to want, for the dry run of
// --reconcile: what Reconcile does, in its order (deletions of services
// first, then per service its creation or update and its destinations'
// deletions, updates and creations). owns, if not nil, scopes it.
func plan(cur, want []ipvs.VirtualService, owns func(ipvs.Service) bool) []ipvs.Change {
	wanted := make(map[ipvs.Service]int, len(want))
	for i, v := range want {
		wanted[identity(v.Service)] = i
	}
	have := make(map[ipvs.Service]int, len(cur))
	var out []ipvs.Change
	for i, v := range cur {
		id := identity(v.Service)
		if owns != nil && !owns(id) {
			continue
		}
		have[id] = i
		if _, ok := wanted[id]; !ok {
			out = append(out, ipvs.Change{Kind: ipvs.DeleteService, Service: v.Service})
		}
	}
	for _, w := range want {
		id := identity(w.Service)
		i, ok := have[id]
		if !ok {
			out = append(out, ipvs.Change{Kind: ipvs.CreateService, Service: w.Service})
			for _, d := range w.Destinations {
				out = append(out, ipvs.Change{Kind: ipvs.CreateDestination, Service: w.Service, Destination: d})
			}
			continue
		}
		c := cur[i]
		if c.Service != w.Service {
			out = append(out, ipvs.Change{Kind: ipvs.UpdateService, Service: w.Service})
		}
		wd := make(map[destKey]ipvs.Destination, len(w.Destinations))
		for _, d := range w.Destinations {
			wd[destIdentity(d)] = d
		}
		cd := make(map[destKey]ipvs.Destination, len(c.Destinations))
		for _, d := range c.Destinations {
			k := destIdentity(d)
			cd[k] = d
			if _, ok := wd[k]; !ok {
				out = append(out, ipvs.Change{Kind: ipvs.DeleteDestination, Service: w.Service, Destination: d})
			}
		}
		for _, d := range w.Destinations {
			old, ok := cd[destIdentity(d)]
			switch {
			case !ok:
				out = append(out, ipvs.Change{Kind: ipvs.CreateDestination, Service: w.Service, Destination: d})
			case old != d:
				out = append(out, ipvs.Change{Kind: ipvs.UpdateDestination, Service: w.Service, Destination: d})
			}
		}
	}
	return out
}

// changeCommand writes ch as the ipvsadm command line that makes it
// (without the program name), as rules text writes it, with a newline.
func changeCommand(ch ipvs.Change) string {
	vs := []ipvs.VirtualService{{Service: ch.Service}}
	isDest := ch.Kind == ipvs.CreateDestination || ch.Kind == ipvs.UpdateDestination || ch.Kind == ipvs.DeleteDestination
	if isDest {
		vs[0].Destinations = []ipvs.Destination{ch.Destination}
	}
	text := ipvsrules.Format(vs, ipvsrules.FormatOptions{Lossless: true})
	svcLine, destLine, _ := bytes.Cut(text, []byte("\n"))
	switch ch.Kind {
	case ipvs.CreateService:
		return string(svcLine) + "\n"
	case ipvs.UpdateService:
		return "-E" + string(svcLine[2:]) + "\n"
	case ipvs.DeleteService:
		// "-A <service> -s ..." -> "-D <service>"
		return "-D" + string(serviceWords(svcLine[2:])) + "\n"
	case ipvs.CreateDestination:
		return string(destLine)
	case ipvs.UpdateDestination:
		return "-e" + string(destLine[2:])
	case ipvs.DeleteDestination:
		rest := destLine[2:]
		// "-a <service> -r <addr> -m -w 1" -> "-d <service> -r <addr>"
		if i := bytes.Index(rest, []byte(" -r ")); i >= 0 {
			j := i + 4
			for j < len(rest) && rest[j] != ' ' && rest[j] != '\n' {
				j++
			}
			return "-d" + string(rest[:j]) + "\n"
		}
	}
	return "# " + ch.String() + "\n"
}

// serviceWords returns the " -t addr:port" or " -f mark [-6]" that starts
// a service line after its command.
func serviceWords(b []byte) []byte {
	if i := bytes.Index(b, []byte(" -s")); i >= 0 {
		return b[:i]
	}
	if i := bytes.Index(b, []byte(" --scheduler")); i >= 0 {
		return b[:i]
	}
	return b
}
