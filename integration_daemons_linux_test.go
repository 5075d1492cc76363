//go:build linux

package ipvs_test

// Sync daemons: start, list and stop, with defaults and every field.

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ipvs-go/ipvs"
)

func TestIntegrationSyncDaemons(t *testing.T) {
	c, ns := newClient(t)
	ctx := testCtx(t)
	wantDaemons(t, ctx, c)
	group := addr("224.0.0.81")
	// Defaults: the kernel fills and reports them.
	mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"})
	master := ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", MaxLength: 1472, Group: group, Port: 8848, TTL: 1}
	wantDaemons(t, ctx, c, master)
	mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "lo", SyncID: 5})
	// A backup's default length follows the interface MTU (65536 on lo).
	backup := ipvs.SyncDaemon{State: ipvs.Backup, Interface: "lo", SyncID: 5, MaxLength: 65507, Group: group, Port: 8848, TTL: 1}
	wantDaemons(t, ctx, c, master, backup)

	err := c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo"})
	wantKernelErr(t, "second master", err, syscall.EEXIST, os.ErrExist)
	err = c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "lo", SyncID: 6})
	wantKernelErr(t, "second backup", err, syscall.EEXIST, os.ErrExist)
	// The interface is checked before "already running".
	err = c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "nosuch0"})
	wantKernelErr(t, "second master on an unknown interface", err, syscall.ENODEV)
	wantDaemons(t, ctx, c, master, backup)

	mustStopDaemon(t, c, ipvs.Master)
	wantDaemons(t, ctx, c, backup)
	mustStopDaemon(t, c, ipvs.Backup)
	wantDaemons(t, ctx, c)
	wantKernelErr(t, "stop master when none runs", c.StopSyncDaemon(ctx, ipvs.Master), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "stop backup when none runs", c.StopSyncDaemon(ctx, ipvs.Backup), syscall.ESRCH, os.ErrNotExist)
	wantKernelErr(t, "start on an unknown interface", c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "nosuch0"}), syscall.ENODEV)

	// Every field set explicitly.
	master = ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", SyncID: 255, MaxLength: 1000, Group: addr("239.1.2.3"), Port: 9000, TTL: 5}
	backup = ipvs.SyncDaemon{State: ipvs.Backup, Interface: "lo", SyncID: 200, MaxLength: 1200, Group: addr("239.1.2.4"), Port: 9001, TTL: 7}
	mustStartDaemon(t, ctx, c, backup)
	mustStartDaemon(t, ctx, c, master)
	wantDaemons(t, ctx, c, master, backup)
	mustStopDaemon(t, c, ipvs.Master)
	mustStopDaemon(t, c, ipvs.Backup)

	// IPv6 groups. On lo there is no IPv6 multicast route.
	err = c.StartSyncDaemon(ctx, ipvs.SyncDaemon{State: ipvs.Master, Interface: "lo", Group: addr("ff02::1:81")})
	if err == nil {
		t.Logf("IPv6 group ff02::1:81 on lo: master started")
		mustStopDaemon(t, c, ipvs.Master)
	} else {
		wantKernelErr(t, "master with an IPv6 group on lo", err, syscall.ENETUNREACH)
	}
	// A dummy interface, up with an IPv6 address, takes IPv6 groups.
	ns.addDummy(t, "sync0", "2001:db8:17::1/64", "10.17.0.1/24")
	g6 := addr("ff02::1:81")
	for _, d := range []ipvs.SyncDaemon{
		{State: ipvs.Master, Interface: "sync0", SyncID: 1, Group: g6},
		{State: ipvs.Backup, Interface: "sync0", SyncID: 2, Group: g6, Port: 9848, MaxLength: 1400},
	} {
		t.Run(d.State.String()+" with an IPv6 group on a dummy interface", func(t *testing.T) {
			if err := c.StartSyncDaemon(ctx, d); err != nil {
				t.Errorf("StartSyncDaemon with IPv6 group on a dummy interface %+v: %v", d, err)
			} else {
				t.Logf("IPv6 group %v on dummy interface: %v started", d.Group, d.State)
			}
		})
	}
	// A master's default length is 1500 less the headers: 1452 for IPv6.
	wantDaemons(t, ctx, c,
		ipvs.SyncDaemon{State: ipvs.Master, Interface: "sync0", SyncID: 1, MaxLength: 1452, Group: g6, Port: 8848, TTL: 1},
		ipvs.SyncDaemon{State: ipvs.Backup, Interface: "sync0", SyncID: 2, MaxLength: 1400, Group: g6, Port: 9848, TTL: 1},
	)
	mustStopDaemon(t, c, ipvs.Master)
	mustStopDaemon(t, c, ipvs.Backup)
	// IPv4 on the dummy interface, backup default length from its MTU.
	mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: ipvs.Backup, Interface: "sync0"})
	got, err := c.SyncDaemons(ctx)
	if err != nil || len(got) != 1 {
		t.Fatalf("SyncDaemons = %v, %v", got, err)
	}
	t.Logf("backup on a dummy interface (MTU 1500) reports MaxLength %d", got[0].MaxLength)
	mustStopDaemon(t, c, ipvs.Backup)
	wantDaemons(t, ctx, c)
}

// TestIntegrationStopDaemonRightAfterStart stops sync daemons at once after
// starting them, and after a pause. A stop must get an answer. The kernel
// sends none when the daemon's thread had not run yet (likely kthread_stop
// returning -EINTR, on which netlink_rcv_skb sends no acknowledgement), so
// StopSyncDaemon blocks until its deadline: this test fails until the
// library copes with that, and how often depends on timing.
func TestIntegrationStopDaemonRightAfterStart(t *testing.T) {
	c, _ := newClient(t)
	ctx := testCtx(t)
	phase := func(delay time.Duration, n int) (noAnswer int) {
		t.Helper()
		for i := range n {
			st := ipvs.Master
			if i%2 == 1 {
				st = ipvs.Backup
			}
			mustStartDaemon(t, ctx, c, ipvs.SyncDaemon{State: st, Interface: "lo", SyncID: uint32(i)})
			time.Sleep(delay)
			sctx, cancel := context.WithTimeout(ctx, stopWait)
			err := c.StopSyncDaemon(sctx, st)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				ds, lerr := c.SyncDaemons(ctx)
				if lerr != nil || len(ds) != 0 {
					t.Fatalf("StopSyncDaemon(%v) got no answer, and SyncDaemons = %+v, %v", st, ds, lerr)
				}
				noAnswer++
				continue
			}
			if err != nil {
				t.Fatalf("StopSyncDaemon(%v): %v", st, err)
			}
		}
		wantDaemons(t, ctx, c)
		return noAnswer
	}
	const n, m = 16, 6
	immediate := phase(0, n)
	paused := phase(300*time.Millisecond, m)
	t.Logf("%s: StopSyncDaemon got no answer within %v in %d of %d stops right after the start, and in %d of %d stops 300ms after it; each of those daemons was stopped", kernelRelease(), stopWait, immediate, n, paused, m)
	if immediate > 0 || paused > 0 {
		t.Errorf("StopSyncDaemon waited for an answer the kernel never sent (%d of %d immediate stops, %d of %d after 300ms): "+
			"the kernel stopped each daemon but sent no acknowledgement, so a caller without a deadline blocks for ever", immediate, n, paused, m)
	}
}
