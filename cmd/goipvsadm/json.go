package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ipvs-go/ipvs"
	"github.com/ipvs-go/ipvs/ipvsrules"
)

// The JSON output of --json (schema version 1; see the package
// documentation). Fields are only ever added to it.

type jsonStats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"inpkts"`
	OutPkts  uint64 `json:"outpkts"`
	InBytes  uint64 `json:"inbytes"`
	OutBytes uint64 `json:"outbytes"`
}

type jsonRate struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"inpps"`
	OutPPS uint64 `json:"outpps"`
	InBPS  uint64 `json:"inbps"`
	OutBPS uint64 `json:"outbps"`
}

type jsonTunnel struct {
	Type     string `json:"type"`
	Port     uint16 `json:"port,omitempty"`
	Checksum string `json:"checksum"`
}

type jsonDest struct {
	Address         string      `json:"address"`
	Port            uint16      `json:"port"`
	Forward         string      `json:"forward"`
	Weight          int         `json:"weight"`
	UThreshold      uint32      `json:"u_threshold"`
	LThreshold      uint32      `json:"l_threshold"`
	ActiveConns     uint32      `json:"active_conns"`
	InactiveConns   uint32      `json:"inactive_conns"`
	PersistentConns uint32      `json:"persistent_conns"`
	Tunnel          *jsonTunnel `json:"tunnel,omitempty"`
	Stats           jsonStats   `json:"stats"`
	Rate            jsonRate    `json:"rate"`
}

type jsonService struct {
	Protocol     string     `json:"protocol,omitempty"`
	Address      string     `json:"address,omitempty"`
	Port         *uint16    `json:"port,omitempty"`
	FWMark       uint32     `json:"fwmark,omitempty"`
	Family       string     `json:"family"`
	Scheduler    string     `json:"scheduler"`
	SchedFlags   []string   `json:"sched_flags"`
	Persistent   bool       `json:"persistent"`
	Timeout      uint64     `json:"timeout"`
	Netmask      string     `json:"netmask"`
	PE           string     `json:"pe,omitempty"`
	OnePacket    bool       `json:"ops"`
	Stats        jsonStats  `json:"stats"`
	Rate         jsonRate   `json:"rate"`
	Destinations []jsonDest `json:"destinations"`
}

type jsonTableOut struct {
	Version  string        `json:"version,omitempty"`
	Size     *uint32       `json:"size,omitempty"`
	Services []jsonService `json:"services"`
}

func statsOf(s ipvs.Stats) (jsonStats, jsonRate) {
	return jsonStats{s.Connections, s.PacketsIn, s.PacketsOut, s.BytesIn, s.BytesOut},
		jsonRate{s.ConnectionRate, s.PacketRateIn, s.PacketRateOut, s.ByteRateIn, s.ByteRateOut}
}

func familyName(f ipvs.Family) string {
	if f == ipvs.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

var forwardNames = map[ipvs.ForwardMethod]string{ipvs.NAT: "masq", ipvs.DR: "route", ipvs.IPIP: "tunnel", ipvs.Local: "local"}

// jsonTable is -L --json: info is nil for one service (-L -t ...).
func jsonTable(info *ipvs.Info, vs []ipvs.VirtualServiceStats, noSort bool) jsonTableOut {
	var out jsonTableOut
	if info != nil {
		out.Version = fmt.Sprintf("%d.%d.%d", info.Version.Major, info.Version.Minor, info.Version.Patch)
		size := info.ConnectionTableSize
		out.Size = &size
	}
	order := identityOrder(len(vs))
	if !noSort {
		ss := make([]ipvs.Service, len(vs))
		for i := range vs {
			ss[i] = vs[i].Service
		}
		order = ipvsrules.ServiceOrder(ss)
	}
	out.Services = make([]jsonService, 0, len(vs))
	for _, i := range order {
		v := &vs[i]
		s := v.Service
		js := jsonService{
			Scheduler:  s.Scheduler,
			SchedFlags: []string{},
			Persistent: s.Flags&ipvs.FlagPersistent != 0,
			Timeout:    uint64(s.Timeout / time.Second),
			Netmask:    s.Netmask.String(),
			PE:         s.PersistenceEngine,
			OnePacket:  s.Flags&ipvs.FlagOnePacket != 0,
		}
		if s.FirewallMark != 0 {
			js.FWMark = s.FirewallMark
			js.Family = familyName(s.Family)
		} else {
			js.Protocol = protocolName(s.Protocol)
			js.Address = s.Address.String()
			port := s.Port
			js.Port = &port
			js.Family = "ipv4"
			if s.Address.Is6() {
				js.Family = "ipv6"
			}
		}
		if flags := appendSchedFlags(nil, &s); len(flags) > 0 {
			js.SchedFlags = splitComma(string(flags))
		}
		js.Stats, js.Rate = statsOf(v.Stats)
		dorder := identityOrder(len(v.Destinations))
		if !noSort {
			dd := make([]ipvs.Destination, len(v.Destinations))
			for j := range v.Destinations {
				dd[j] = v.Destinations[j].Destination
			}
			dorder = ipvsrules.DestinationOrder(dd)
		}
		js.Destinations = make([]jsonDest, 0, len(v.Destinations))
		for _, j := range dorder {
			d := &v.Destinations[j]
			jd := jsonDest{
				Address:         d.Address.String(),
				Port:            d.Port,
				Forward:         forwardNames[d.ForwardMethod],
				Weight:          d.Weight,
				UThreshold:      d.UpperThreshold,
				LThreshold:      d.LowerThreshold,
				ActiveConns:     d.ActiveConnections,
				InactiveConns:   d.InactiveConnections,
				PersistentConns: d.PersistentConnections,
			}
			if d.ForwardMethod == ipvs.IPIP {
				jd.Tunnel = &jsonTunnel{Type: d.TunnelType.String(), Checksum: d.TunnelChecksum.String()}
				if d.TunnelType == ipvs.TunnelGUE {
					jd.Tunnel.Port = d.TunnelPort
				}
			}
			jd.Stats, jd.Rate = statsOf(d.Stats)
			js.Destinations = append(js.Destinations, jd)
		}
		out.Services = append(out.Services, js)
	}
	return out
}

func identityOrder(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

type jsonTimeoutsOut struct {
	TCP    int64 `json:"tcp"`
	TCPFin int64 `json:"tcpfin"`
	UDP    int64 `json:"udp"`
}

func jsonTimeouts(t ipvs.Timeouts) jsonTimeoutsOut {
	return jsonTimeoutsOut{int64(t.TCP / time.Second), int64(t.TCPFin / time.Second), int64(t.UDP / time.Second)}
}

type jsonDaemon struct {
	State     string `json:"state"`
	Interface string `json:"mcast_interface"`
	SyncID    uint32 `json:"syncid"`
	MaxLen    int    `json:"sync_maxlen,omitempty"`
	Group     string `json:"mcast_group,omitempty"`
	Port      uint16 `json:"mcast_port,omitempty"`
	TTL       uint8  `json:"mcast_ttl,omitempty"`
}

type jsonDaemonsOut struct {
	Daemons []jsonDaemon `json:"daemons"`
}

func jsonDaemons(ds []ipvs.SyncDaemon) jsonDaemonsOut {
	out := jsonDaemonsOut{Daemons: []jsonDaemon{}}
	for _, d := range ds {
		jd := jsonDaemon{State: d.State.String(), Interface: d.Interface, SyncID: d.SyncID,
			MaxLen: d.MaxLength, Port: d.Port, TTL: d.TTL}
		if d.Group.IsValid() {
			jd.Group = d.Group.String()
		}
		out.Daemons = append(out.Daemons, jd)
	}
	return out
}

type jsonConn struct {
	Protocol    string `json:"protocol"`
	Client      string `json:"client"`
	Virtual     string `json:"virtual,omitempty"`
	FWMark      uint32 `json:"fwmark,omitempty"`
	Destination string `json:"destination"`
	State       string `json:"state"`
	Expires     int64  `json:"expires"`
	Template    bool   `json:"template"`
	PEName      string `json:"pe_name,omitempty"`
	PEData      string `json:"pe_data,omitempty"`
}

type jsonConnsOut struct {
	Connections []jsonConn `json:"connections"`
}

func jsonConnections(cs []ipvs.Connection) jsonConnsOut {
	out := jsonConnsOut{Connections: []jsonConn{}}
	for _, c := range cs {
		jc := jsonConn{
			Protocol:    "IP",
			Client:      c.Client.String(),
			FWMark:      c.FirewallMark,
			Destination: c.Destination.String(),
			State:       c.State.String(),
			Expires:     int64(c.Expires / time.Second),
			Template:    c.Template,
			PEName:      c.PEName,
			PEData:      c.PEData,
		}
		if c.Protocol != 0 {
			jc.Protocol = protocolName(c.Protocol)
		}
		if c.Virtual.IsValid() {
			jc.Virtual = c.Virtual.String()
		}
		out.Connections = append(out.Connections, jc)
	}
	return out
}

func (m *cmd) writeJSON(v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return m.done(err)
	}
	_, err = m.stdout.Write(append(b, '\n'))
	return m.done(err)
}
