package ipvs

import (
	"context"
	"net/netip"
	"strconv"

	"github.com/ipvs-go/ipvs/internal/uapi"
)

// DaemonState is the role of a connection synchronisation daemon.
type DaemonState uint32

// Sync daemon states. One master and one backup may run at once in a
// network namespace.
const (
	// Master sends the load balancer's connection entries to the group.
	Master DaemonState = 1
	// Backup receives entries from a master and installs them, so that the
	// backup load balancer keeps connections after a failover.
	Backup DaemonState = 2
)

// String returns "master", "backup" or "DaemonState(N)".
func (s DaemonState) String() string {
	switch s {
	case Master:
		return "master"
	case Backup:
		return "backup"
	}
	return "DaemonState(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// MaxSyncID is the largest sync ID: the sync protocol carries it in one byte.
const MaxSyncID = 255

// MaxSyncLength is the largest sync message payload the kernel keeps with
// an IPv4 group: 65535 less the IPv4 and UDP headers. With an IPv6 group it
// is 20 less (the larger IPv6 header).
const MaxSyncLength = 65507

// minBackupSyncLength is the smallest payload the kernel keeps for a backup.
const minBackupSyncLength = 1024

// A SyncDaemon is a connection synchronisation daemon: a kernel thread that
// multicasts connection state (master) or receives it (backup). Fields left
// zero take the kernel's defaults, which the kernel then reports: group
// 224.0.0.81, port 8848, TTL 1, and a maximum length of 1472 for a master or
// the interface MTU less 28 for a backup.
type SyncDaemon struct {
	State DaemonState
	// Interface is the multicast interface, such as "eth0". Required.
	Interface string
	// SyncID tells apart groups of load balancers on one network, 0-255;
	// a backup accepts only messages with its own ID.
	SyncID uint32
	// MaxLength is the largest sync message payload (kernel 4.3): 0 for
	// the default, or 1-MaxSyncLength for a master and 1024-MaxSyncLength
	// for a backup, with an IPv6 Group 20 less. The kernel would clamp
	// other values, so they are refused: a non-zero MaxLength reads back
	// as given.
	MaxLength int
	// Group is the multicast group, IPv4 or IPv6 (kernel 4.3); the zero
	// value means the default 224.0.0.81.
	Group netip.Addr
	// Port is the UDP port, 0 for the default 8848 (kernel 4.3).
	Port uint16
	// TTL is the multicast TTL, 0 for the default 1 (kernel 4.3).
	TTL uint8
}

// StartSyncDaemon starts a sync daemon.
//
// If a daemon in that state already runs, an error compatible with
// errors.Is(err, os.ErrExist) is returned. The kernel refuses to start one
// (os.ErrInvalid) while a service has a destination of the other address
// family.
func (c *Client) StartSyncDaemon(ctx context.Context, d SyncDaemon) error {
	if err := d.validate("start sync daemon"); err != nil {
		return err
	}
	return c.c.startDaemon(ctx, d)
}

// StopSyncDaemon stops the sync daemon in the given state.
//
// If none runs in that state, an error compatible with errors.Is(err,
// os.ErrNotExist) is returned.
func (c *Client) StopSyncDaemon(ctx context.Context, state DaemonState) error {
	const op = "stop sync daemon"
	if state != Master && state != Backup {
		return invalid(op, "state", "%v is not Master or Backup", state)
	}
	return c.c.stopDaemon(ctx, state)
}

// SyncDaemons lists the running sync daemons, the master first.
func (c *Client) SyncDaemons(ctx context.Context) ([]SyncDaemon, error) {
	return c.c.daemons(ctx)
}

// groupFamily returns the family of a sync group, the default one IPv4.
func groupFamily(g netip.Addr) Family {
	if g.Is6() {
		return IPv6
	}
	return IPv4
}

func (d SyncDaemon) validate(op string) error {
	if d.State != Master && d.State != Backup {
		return invalid(op, "SyncDaemon.State", "%v is not Master or Backup", d.State)
	}
	if d.Interface == "" {
		return invalid(op, "SyncDaemon.Interface", "a multicast interface is required")
	}
	if err := checkName(op, "SyncDaemon.Interface", d.Interface, uapi.IfNameMaxLen-1); err != nil {
		return err
	}
	if d.SyncID > MaxSyncID {
		return invalid(op, "SyncDaemon.SyncID", "%d is above %d", d.SyncID, MaxSyncID)
	}
	if d.MaxLength != 0 {
		min, max := 1, MaxSyncLength
		if d.State == Backup {
			min = minBackupSyncLength
		}
		if d.Group.Is6() {
			max -= 20 // the IPv6 header is 40 bytes, IPv4's 20
		}
		if d.MaxLength < min || d.MaxLength > max {
			return invalid(op, "SyncDaemon.MaxLength", "%d is outside %d-%d for a %v with a %v group, which the kernel keeps (0 for the default)",
				d.MaxLength, min, max, d.State, groupFamily(d.Group))
		}
	}
	if d.Group.IsValid() {
		if err := checkAddr(op, "SyncDaemon.Group", d.Group); err != nil {
			return err
		}
		if !d.Group.IsMulticast() {
			return invalid(op, "SyncDaemon.Group", "%v is not a multicast address", d.Group)
		}
	}
	return nil
}
