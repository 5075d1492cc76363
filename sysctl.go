package ipvs

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sysctls are the IPVS sysctls of a network namespace, the files under
// /proc/sys/net/ipv4/vs (net.ipv4.vs.* for sysctl(8)). Client.Sysctls sets
// the field of every knob the kernel has and leaves the others nil;
// Client.SetSysctls writes the non-nil fields and leaves the others alone.
// Each field's comment gives the knob's name, what the kernel takes and,
// for knobs newer than Linux 3.18, the release that added it.
//
// A BOOLEAN knob of the kernel is a bool (the kernel reads any non-zero
// value as true, and 1 is written for true). Pointers to values are
// written with new, for example Sysctls{ConnReuseMode: new(0)}.
type Sysctls struct {
	// AMDropRate is am_droprate, the 1/rate of packets dropped by
	// drop_packet's DefenseAlways mode; at least 0 (default 10).
	AMDropRate *int
	// AMemThreshold is amemthresh, the free memory in pages under which
	// the automatic defense modes start; at least 0 (default 1024).
	AMemThreshold *int
	// BackupOnly is backup_only: no director function while a backup
	// sync daemon runs, to avoid loops with DR and IPIP.
	BackupOnly *bool
	// CacheBypass is cache_bypass: forward packets to the original
	// destination when no cache server is available.
	CacheBypass *bool
	// ConnLoadFactor is conn_lfactor, the load factor that sizes the
	// resizable connection table: buckets are 2^-n times the entries, from
	// -8 (a larger table) to 8 (default -4). Linux 7.1.
	ConnLoadFactor *int
	// ConnMax is conn_max, the limit on the connection entries of the
	// namespace, 0 to 2^30 (the default). Linux 7.2.
	ConnMax *int
	// ConnReuseMode is conn_reuse_mode, the handling of a new connection
	// that reuses the ports of an old one: a bitmap, 0 (deliver to the old
	// connection's destination), 1 (default: reschedule when safe) or 2
	// (1 and also in FIN_WAIT), 0 to 3. Linux 4.1.
	ConnReuseMode *int
	// Conntrack is conntrack: keep netfilter connection tracking entries
	// for connections that IPVS handles. Only in kernels built with
	// CONFIG_IP_VS_NFCT.
	Conntrack *bool
	// DebugLevel is debug_level, from 0 (default) to 12 and more. Only in
	// kernels built with CONFIG_IP_VS_DEBUG; the kernel has one for all
	// namespaces, read-only outside the initial one.
	DebugLevel *int
	// DropEntry is drop_entry, the defense that randomly drops connection
	// entries.
	DropEntry *DefenseMode
	// DropPacket is drop_packet, the defense that drops 1/rate packets.
	DropPacket *DefenseMode
	// EstimatorCPUs is est_cpulist, the CPUs of the rate estimation
	// kthreads in the kernel's cpulist format, such as "0-3,6" or "all";
	// empty stops estimation. The kernel keeps only the CPUs that the
	// writing thread may run on. Linux 6.2.
	EstimatorCPUs *string
	// EstimatorNice is est_nice, the nice value of the estimation
	// kthreads, -20 to 19 (default 0). Linux 6.2.
	EstimatorNice *int
	// ExpireNoDestConn is expire_nodest_conn: expire a connection at its
	// next packet once its destination is deleted, instead of dropping
	// packets until it times out.
	ExpireNoDestConn *bool
	// ExpireQuiescentTemplate is expire_quiescent_template: expire a
	// persistence template whose destination has weight 0.
	ExpireQuiescentTemplate *bool
	// IgnoreTunneled is ignore_tunneled: leave packets of protocols IPVS
	// does not know (such as IPIP) alone. Linux 4.3.
	IgnoreTunneled *bool
	// LBLCExpiration is lblc_expiration, how long the lblc scheduler keeps
	// an unused entry of its table (default 24h). Whole seconds, at most
	// 2147483s. Only while the ip_vs_lblc module is loaded.
	LBLCExpiration *time.Duration
	// LBLCRExpiration is lblcr_expiration, the same for the lblcr
	// scheduler. Only while the ip_vs_lblcr module is loaded.
	LBLCRExpiration *time.Duration
	// NATICMPSend is nat_icmp_send: answer NAT replies from real servers
	// that match no connection with ICMP destination unreachable.
	NATICMPSend *bool
	// PMTUDisc is pmtu_disc (default true): reject DF packets above the
	// path MTU with ICMP fragmentation needed; false fragments them for
	// IPIP.
	PMTUDisc *bool
	// RunEstimation is run_estimation (default true): false stops the
	// rate estimation, and the rates of Stats stay 0. Linux 5.15.
	RunEstimation *bool
	// ScheduleICMP is schedule_icmp: schedule ICMP packets (and TCP RSTs
	// seen in ICMP errors) that match no connection. Linux 4.3.
	ScheduleICMP *bool
	// SecureTCP is secure_tcp, the defense that uses a stricter TCP state
	// table.
	SecureTCP *DefenseMode
	// SloppySCTP is sloppy_sctp: create connections from any SCTP
	// packet, not only INIT (for backups taking over).
	SloppySCTP *bool
	// SloppyTCP is sloppy_tcp: create connections from any TCP packet,
	// not only SYN (for backups taking over).
	SloppyTCP *bool
	// SNATReroute is snat_reroute (default true): route NAT replies from
	// real servers as if the director sent them.
	SNATReroute *bool
	// ServiceLoadFactor is svc_lfactor, the load factor that sizes the
	// resizable service table, -8 to 8 (default -3). Linux 7.1.
	ServiceLoadFactor *int
	// SyncPersistMode is sync_persist_mode: 0 (default) synchronizes every
	// connection, 1 only the templates of persistent services.
	SyncPersistMode *int
	// SyncPorts is sync_ports, the number of sync threads and UDP ports: a
	// power of 2, at least 1 (default 1).
	SyncPorts *int
	// SyncQueueMax is sync_qlen_max, the most sync messages queued
	// unsent (default 1/32 of the memory pages).
	SyncQueueMax *uint64
	// SyncRefreshPeriod is sync_refresh_period (default 0): a connection
	// whose state did not change is synced again only after this period.
	// Whole seconds, at most 2147483s.
	SyncRefreshPeriod *time.Duration
	// SyncRetries is sync_retries, 0 (default) to 3: how many times a sync
	// message is sent again, every SyncRefreshPeriod/8.
	SyncRetries *int
	// SyncSocketSize is sync_sock_size, the send (master) or receive
	// (backup) buffer of the sync sockets in bytes; 0 (default) keeps the
	// system's default.
	SyncSocketSize *int
	// SyncThreshold is sync_threshold, when a connection is synchronized.
	SyncThreshold *SyncThreshold
	// SyncVersion is sync_version, the sync protocol version sent: 0 (for
	// old backups) or 1 (default).
	SyncVersion *int

	// Other holds the knobs this package does not know, newer ones for
	// example, by file name, as the kernel prints them without the final
	// newline. SetSysctls writes them as they are.
	Other map[string]string
}

// DefenseMode is the mode of the drop_entry, drop_packet and secure_tcp
// defenses against connection floods.
type DefenseMode int

// The defense modes. The kernel switches a defense between DefenseAuto and
// DefenseAutoActive every second, by the free memory (see
// Sysctls.AMemThreshold).
const (
	DefenseOff        DefenseMode = 0 // never (the default)
	DefenseAuto       DefenseMode = 1 // when memory is low; inactive now
	DefenseAutoActive DefenseMode = 2 // when memory is low; active now
	DefenseAlways     DefenseMode = 3 // always
)

// String returns "off", "auto", "auto-active", "always" or
// "DefenseMode(N)".
func (m DefenseMode) String() string {
	switch m {
	case DefenseOff:
		return "off"
	case DefenseAuto:
		return "auto"
	case DefenseAutoActive:
		return "auto-active"
	case DefenseAlways:
		return "always"
	}
	return "DefenseMode(" + strconv.Itoa(int(m)) + ")"
}

// SyncThreshold is sync_threshold: a connection is synchronized each time
// its incoming packet count modulo Period equals Threshold (default 3 and
// 50). Threshold must be less than Period, unless Period is 0: then a
// connection is synchronized on state changes and once when it reaches
// Threshold packets.
type SyncThreshold struct {
	Threshold int
	Period    int
}

// Sysctls reads the IPVS sysctls of the Client's namespace. It needs no
// capability. A knob this kernel lacks is nil. If the kernel shows none at
// all, because IPVS was unloaded, the error matches os.ErrNotExist.
func (c *Client) Sysctls(ctx context.Context) (Sysctls, error) {
	return c.c.sysctls(ctx)
}

// SetSysctls writes each non-nil field of s (and each entry of s.Other) to
// the sysctl of the Client's namespace. It needs CAP_NET_ADMIN in the user
// namespace that owns the network namespace (or to be its root).
//
// Every value is checked before anything is written: a value outside what
// the field's comment allows is an *Error naming the field that matches
// os.ErrInvalid, and a knob this kernel lacks is an *Error naming the field
// and the release that added it that matches errors.ErrUnsupported. Every
// file is opened before the first write, so a missing permission
// (os.ErrPermission) also fails before anything is written. The writes are
// not one transaction: if the kernel refuses one, the fields before it
// have been written.
func (c *Client) SetSysctls(ctx context.Context, s Sysctls) error {
	const op = "set sysctls"
	writes, err := s.encode(op)
	if err != nil {
		return err
	}
	return c.c.setSysctls(ctx, op, writes)
}

// sysctlWrite is one file SetSysctls writes.
type sysctlWrite struct {
	knob *sysctlKnob // nil for Other
	name string      // the file name
	text string      // what is written, with the final newline
}

// field returns the name of the Sysctls field behind w, for errors.
func (w sysctlWrite) field() string {
	if w.knob == nil {
		return "Sysctls.Other[" + strconv.Quote(w.name) + "]"
	}
	return "Sysctls." + w.knob.field
}

// sysctlKnob describes one knob this package knows.
type sysctlKnob struct {
	name  string // the file name under /proc/sys/net/ipv4/vs
	field string // the Sysctls field
	since string // the release that added it, "" before 3.18
	needs string // what else it needs, if anything: "a kernel built with ..."
	// decode sets the field from the kernel's text (final newline
	// removed); encode returns the text for a set field (ok), or why its
	// value is invalid (reason).
	decode func(s *Sysctls, text string) error
	encode func(s *Sysctls) (text string, ok bool, reason string)
}

// knob builds a sysctlKnob for a field of type T, p returning the field's
// address.
func knob[T any](name, field, since string, p func(*Sysctls) **T,
	parse func(string) (T, error), format func(T) (string, string)) sysctlKnob {
	return sysctlKnob{
		name: name, field: field, since: since,
		decode: func(s *Sysctls, text string) error {
			v, err := parse(text)
			if err != nil {
				return err
			}
			*p(s) = &v
			return nil
		},
		encode: func(s *Sysctls) (string, bool, string) {
			v := *p(s)
			if v == nil {
				return "", false, ""
			}
			text, reason := format(*v)
			return text, true, reason
		},
	}
}

func parseInt(text string) (int, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 32)
	return int(n), err
}

func boolKnob(name, field, since string, p func(*Sysctls) **bool) sysctlKnob {
	return knob(name, field, since, p,
		func(text string) (bool, error) {
			n, err := parseInt(text)
			return n != 0, err
		},
		func(v bool) (string, string) {
			if v {
				return "1", ""
			}
			return "0", ""
		})
}

func intKnob(name, field, since string, lo, hi int, p func(*Sysctls) **int) sysctlKnob {
	return knob(name, field, since, p, parseInt,
		func(v int) (string, string) {
			if v < lo || v > hi {
				return "", rangeReason(v, lo, hi)
			}
			return strconv.Itoa(v), ""
		})
}

func rangeReason(v, lo, hi int) string {
	if hi == math.MaxInt32 {
		return strconv.Itoa(v) + " is not in the range " + strconv.Itoa(lo) + " to 2147483647"
	}
	return strconv.Itoa(v) + " is not in the range " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi)
}

func defenseKnob(name, field string, p func(*Sysctls) **DefenseMode) sysctlKnob {
	return knob(name, field, "", p,
		func(text string) (DefenseMode, error) {
			n, err := parseInt(text)
			return DefenseMode(n), err
		},
		func(v DefenseMode) (string, string) {
			if v < DefenseOff || v > DefenseAlways {
				return "", rangeReason(int(v), 0, 3) + " (DefenseOff to DefenseAlways)"
			}
			return strconv.Itoa(int(v)), ""
		})
}

// maxJiffiesDuration is the most proc_dointvec_jiffies takes: INT_MAX/HZ
// seconds, with HZ at most 1000.
const maxJiffiesDuration = 2147483 * time.Second

// secondsKnob is a knob of whole seconds (proc_dointvec_jiffies).
func secondsKnob(name, field string, p func(*Sysctls) **time.Duration) sysctlKnob {
	return knob(name, field, "", p,
		func(text string) (time.Duration, error) {
			n, err := parseInt(text)
			return time.Duration(n) * time.Second, err
		},
		func(v time.Duration) (string, string) {
			switch {
			case v < 0:
				return "", v.String() + " is negative"
			case v%time.Second != 0:
				return "", v.String() + " is not a whole number of seconds"
			case v > maxJiffiesDuration:
				return "", v.String() + " exceeds the maximum " + maxJiffiesDuration.String()
			}
			return strconv.FormatInt(int64(v/time.Second), 10), ""
		})
}

// sysctlKnobs are the knobs this package knows, by file name.
var sysctlKnobs = [...]sysctlKnob{
	intKnob("am_droprate", "AMDropRate", "", 0, math.MaxInt32, func(s *Sysctls) **int { return &s.AMDropRate }),
	intKnob("amemthresh", "AMemThreshold", "", 0, math.MaxInt32, func(s *Sysctls) **int { return &s.AMemThreshold }),
	boolKnob("backup_only", "BackupOnly", "", func(s *Sysctls) **bool { return &s.BackupOnly }),
	boolKnob("cache_bypass", "CacheBypass", "", func(s *Sysctls) **bool { return &s.CacheBypass }),
	intKnob("conn_lfactor", "ConnLoadFactor", "7.1", -8, 8, func(s *Sysctls) **int { return &s.ConnLoadFactor }),
	intKnob("conn_max", "ConnMax", "7.2", 0, 1<<30, func(s *Sysctls) **int { return &s.ConnMax }),
	intKnob("conn_reuse_mode", "ConnReuseMode", "4.1", 0, 3, func(s *Sysctls) **int { return &s.ConnReuseMode }),
	needs("a kernel built with CONFIG_IP_VS_NFCT", boolKnob("conntrack", "Conntrack", "", func(s *Sysctls) **bool { return &s.Conntrack })),
	needs("a kernel built with CONFIG_IP_VS_DEBUG", intKnob("debug_level", "DebugLevel", "", 0, math.MaxInt32, func(s *Sysctls) **int { return &s.DebugLevel })),
	defenseKnob("drop_entry", "DropEntry", func(s *Sysctls) **DefenseMode { return &s.DropEntry }),
	defenseKnob("drop_packet", "DropPacket", func(s *Sysctls) **DefenseMode { return &s.DropPacket }),
	knob("est_cpulist", "EstimatorCPUs", "6.2", func(s *Sysctls) **string { return &s.EstimatorCPUs },
		func(text string) (string, error) { return strings.TrimSpace(text), nil },
		func(v string) (string, string) { return v, checkCPUList(v) }),
	intKnob("est_nice", "EstimatorNice", "6.2", -20, 19, func(s *Sysctls) **int { return &s.EstimatorNice }),
	boolKnob("expire_nodest_conn", "ExpireNoDestConn", "", func(s *Sysctls) **bool { return &s.ExpireNoDestConn }),
	boolKnob("expire_quiescent_template", "ExpireQuiescentTemplate", "", func(s *Sysctls) **bool { return &s.ExpireQuiescentTemplate }),
	boolKnob("ignore_tunneled", "IgnoreTunneled", "4.3", func(s *Sysctls) **bool { return &s.IgnoreTunneled }),
	needs("the ip_vs_lblc module (the lblc scheduler) loaded", secondsKnob("lblc_expiration", "LBLCExpiration", func(s *Sysctls) **time.Duration { return &s.LBLCExpiration })),
	needs("the ip_vs_lblcr module (the lblcr scheduler) loaded", secondsKnob("lblcr_expiration", "LBLCRExpiration", func(s *Sysctls) **time.Duration { return &s.LBLCRExpiration })),
	boolKnob("nat_icmp_send", "NATICMPSend", "", func(s *Sysctls) **bool { return &s.NATICMPSend }),
	boolKnob("pmtu_disc", "PMTUDisc", "", func(s *Sysctls) **bool { return &s.PMTUDisc }),
	boolKnob("run_estimation", "RunEstimation", "5.15", func(s *Sysctls) **bool { return &s.RunEstimation }),
	boolKnob("schedule_icmp", "ScheduleICMP", "4.3", func(s *Sysctls) **bool { return &s.ScheduleICMP }),
	defenseKnob("secure_tcp", "SecureTCP", func(s *Sysctls) **DefenseMode { return &s.SecureTCP }),
	boolKnob("sloppy_sctp", "SloppySCTP", "", func(s *Sysctls) **bool { return &s.SloppySCTP }),
	boolKnob("sloppy_tcp", "SloppyTCP", "", func(s *Sysctls) **bool { return &s.SloppyTCP }),
	boolKnob("snat_reroute", "SNATReroute", "", func(s *Sysctls) **bool { return &s.SNATReroute }),
	intKnob("svc_lfactor", "ServiceLoadFactor", "7.1", -8, 8, func(s *Sysctls) **int { return &s.ServiceLoadFactor }),
	intKnob("sync_persist_mode", "SyncPersistMode", "", 0, 1, func(s *Sysctls) **int { return &s.SyncPersistMode }),
	knob("sync_ports", "SyncPorts", "", func(s *Sysctls) **int { return &s.SyncPorts }, parseInt,
		func(v int) (string, string) {
			if v < 1 || v > 1<<30 || v&(v-1) != 0 {
				return "", strconv.Itoa(v) + " is not a power of 2 from 1 to 2^30"
			}
			return strconv.Itoa(v), ""
		}),
	knob("sync_qlen_max", "SyncQueueMax", "", func(s *Sysctls) **uint64 { return &s.SyncQueueMax },
		func(text string) (uint64, error) { return strconv.ParseUint(strings.TrimSpace(text), 10, 64) },
		func(v uint64) (string, string) { return strconv.FormatUint(v, 10), "" }),
	secondsKnob("sync_refresh_period", "SyncRefreshPeriod", func(s *Sysctls) **time.Duration { return &s.SyncRefreshPeriod }),
	intKnob("sync_retries", "SyncRetries", "", 0, 3, func(s *Sysctls) **int { return &s.SyncRetries }),
	intKnob("sync_sock_size", "SyncSocketSize", "", 0, math.MaxInt32, func(s *Sysctls) **int { return &s.SyncSocketSize }),
	knob("sync_threshold", "SyncThreshold", "", func(s *Sysctls) **SyncThreshold { return &s.SyncThreshold },
		func(text string) (SyncThreshold, error) {
			f := strings.Fields(text)
			if len(f) != 2 {
				return SyncThreshold{}, strconv.ErrSyntax
			}
			t, err := parseInt(f[0])
			if err != nil {
				return SyncThreshold{}, err
			}
			p, err := parseInt(f[1])
			return SyncThreshold{Threshold: t, Period: p}, err
		},
		func(v SyncThreshold) (string, string) {
			switch {
			case v.Threshold < 0 || v.Period < 0 || v.Threshold > math.MaxInt32 || v.Period > math.MaxInt32:
				return "", "threshold " + strconv.Itoa(v.Threshold) + " and period " + strconv.Itoa(v.Period) + " must be in the range 0 to 2147483647"
			case v.Period != 0 && v.Threshold >= v.Period:
				return "", "threshold " + strconv.Itoa(v.Threshold) + " is not less than the period " + strconv.Itoa(v.Period)
			}
			return strconv.Itoa(v.Threshold) + " " + strconv.Itoa(v.Period), ""
		}),
	intKnob("sync_version", "SyncVersion", "", 0, 1, func(s *Sysctls) **int { return &s.SyncVersion }),
}

func needs(option string, k sysctlKnob) sysctlKnob {
	k.needs = option
	return k
}

// knobNamed returns the knob with file name name, or nil.
func knobNamed(name string) *sysctlKnob {
	for i := range sysctlKnobs {
		if sysctlKnobs[i].name == name {
			return &sysctlKnobs[i]
		}
	}
	return nil
}

// decode sets the field of s for the file name to text, as the kernel
// printed it, or puts it into s.Other if this package does not know it.
func (s *Sysctls) decode(name, text string) error {
	text = strings.TrimSuffix(text, "\n")
	k := knobNamed(name)
	if k == nil {
		if s.Other == nil {
			s.Other = make(map[string]string)
		}
		s.Other[name] = text
		return nil
	}
	return k.decode(s, text)
}

// encode validates s and returns its writes, the known knobs first in
// sysctlKnobs' order, then Other by name.
func (s *Sysctls) encode(op string) ([]sysctlWrite, error) {
	var writes []sysctlWrite
	for i := range sysctlKnobs {
		k := &sysctlKnobs[i]
		text, ok, reason := k.encode(s)
		if !ok {
			continue
		}
		if reason != "" {
			return nil, invalid(op, "Sysctls."+k.field, "%s (net.ipv4.vs.%s)", reason, k.name)
		}
		writes = append(writes, sysctlWrite{knob: k, name: k.name, text: text + "\n"})
	}
	names := make([]string, 0, len(s.Other))
	for name := range s.Other {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w := sysctlWrite{name: name, text: s.Other[name]}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return nil, invalid(op, w.field(), "not a file name")
		}
		if k := knobNamed(name); k != nil {
			return nil, invalid(op, w.field(), "net.ipv4.vs.%s is Sysctls.%s", name, k.field)
		}
		if !strings.HasSuffix(w.text, "\n") {
			w.text += "\n"
		}
		writes = append(writes, w)
	}
	return writes, nil
}

// checkCPUList checks the kernel's cpulist syntax (bitmap_parselist): empty,
// or comma-separated "all", N, N-M or N-M:used/group, where a number may be
// "N" for the last CPU. It returns why s is invalid, or "". (CPUs beyond
// the last are the kernel's to refuse.)
func checkCPUList(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	num := func(t string) bool {
		if t == "N" {
			return true
		}
		_, err := strconv.ParseUint(t, 10, 31)
		return err == nil
	}
	for _, item := range strings.Split(strings.TrimSpace(s), ",") {
		if item == "all" {
			continue
		}
		r, group, hasGroup := strings.Cut(item, ":")
		if hasGroup {
			used, size, ok := strings.Cut(group, "/")
			if !ok || !num(used) || !num(size) || used == "N" || size == "N" {
				return strconv.Quote(item) + " is not a CPU range (want N, N-M or N-M:used/group)"
			}
		}
		lo, hi, isRange := strings.Cut(r, "-")
		if r == "all" && hasGroup {
			continue
		}
		if !num(lo) || (isRange && !num(hi)) || (hasGroup && !isRange && r != "all") {
			return strconv.Quote(item) + " is not a CPU range (want N, N-M or N-M:used/group)"
		}
	}
	return ""
}
