//go:build linux

package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// baseFormat is bumped whenever the content rules of the cached base
// archive change, so old caches are not reused.
const baseFormat = "base-v2"

// moduleRoots are paths (relative to lib/modules/<release>/) packed into the
// guest. Directories are taken recursively, minus moduleExcludes; the
// dependency closure is added from the full tree's modules.dep.
var moduleRoots = []string{
	"kernel/net",
	"kernel/lib",
	"kernel/crypto",
	"kernel/arch/x86/crypto",
	"kernel/drivers/net/veth.ko",
	"kernel/drivers/net/dummy.ko",
	"kernel/drivers/net/macvlan.ko",
	"kernel/drivers/net/ipvlan",
	"kernel/drivers/net/vxlan",
	"kernel/drivers/net/geneve.ko",
	"kernel/drivers/net/ifb.ko",
	"kernel/drivers/net/tun.ko",
	"kernel/drivers/net/netconsole.ko",
	// Fast job channel (virtio console, /dev/hvc0).
	"kernel/drivers/virtio",
	"kernel/drivers/char/virtio_console.ko",
}

// moduleExcludes are big subtrees of kernel/net with nothing for IPVS.
var moduleExcludes = []string{
	"kernel/net/wireless", "kernel/net/mac80211", "kernel/net/bluetooth",
	"kernel/net/nfc", "kernel/net/ieee802154", "kernel/net/mac802154",
	"kernel/net/ceph", "kernel/net/sunrpc", "kernel/net/9p", "kernel/net/rxrpc",
	"kernel/net/batman-adv", "kernel/net/can", "kernel/net/atm",
	"kernel/net/appletalk", "kernel/net/rds", "kernel/net/ax25", "kernel/net/netrom",
	"kernel/net/rose", "kernel/net/x25", "kernel/net/lapb", "kernel/net/phonet",
	"kernel/net/caif", "kernel/net/qrtr", "kernel/net/smc", "kernel/net/rfkill",
	"kernel/net/nfc", "kernel/net/mpls", "kernel/net/dsa", "kernel/net/ife",
}

// busyboxRequired are applets that must exist even if --list-full misses them.
var busyboxRequired = []string{
	"bin/sh", "bin/mount", "sbin/modprobe", "sbin/depmod", "sbin/insmod", "sbin/rmmod",
	"sbin/lsmod", "bin/ip", "bin/cat", "bin/ls", "sbin/sysctl", "sbin/poweroff",
	"usr/sbin/httpd", "usr/bin/wget", "bin/nc", "bin/sleep", "usr/bin/unshare",
	"usr/bin/nsenter", "bin/ping", "sbin/ifconfig", "sbin/route", "usr/bin/timeout",
}

func hashFiles(h io.Writer, files ...string) {
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			fmt.Fprintf(h, "%s missing\n", f)
			continue
		}
		fmt.Fprintf(h, "%s %d %d\n", f, st.Size(), st.ModTime().UnixNano())
	}
}

// baseArchive returns the cached gzip cpio holding busybox, the modules and
// ipvsadm for k, building it if needed.
func baseArchive(cache string, k *Kernel) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, baseFormat, k.Package, k.Version, k.Release)
	fmt.Fprintln(h, strings.Join(moduleRoots, ","), strings.Join(moduleExcludes, ","), strings.Join(busyboxRequired, ","))
	hashFiles(h, "/bin/busybox", "/usr/sbin/ipvsadm")
	sum := hex.EncodeToString(h.Sum(nil))[:12]
	dir := filepath.Join(cache, "initrd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, fmt.Sprintf("base-%s-%s.cpio.gz", k.Release, sum))
	if exists(out) {
		return out, nil
	}
	t0 := time.Now()
	stage, err := os.MkdirTemp(filepath.Join(cache), "stage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	nmods, err := stageModules(k, stage)
	if err != nil {
		return "", err
	}

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp)
	zw, _ := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	cw := newCpioWriter(zw)
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "run", "root", "payload", "var"} {
		cw.Dir(d, 0o755)
	}
	cw.Bytes("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	cw.Bytes("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	cw.Bytes("etc/hosts", 0o644, []byte("127.0.0.1 localhost vmrig\n::1 localhost ip6-localhost\n"))
	cw.Bytes("etc/nsswitch.conf", 0o644, []byte("hosts: files\n"))
	cw.Bytes("etc/protocols", 0o644, []byte("ip 0 IP\nicmp 1 ICMP\ntcp 6 TCP\nudp 17 UDP\nipv6-icmp 58 IPv6-ICMP\nsctp 132 SCTP\n"))

	// busybox and its applets.
	cw.File("bin/busybox", "/bin/busybox", 0o755)
	list, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list-full: %w", err)
	}
	applets := append(strings.Fields(string(list)), busyboxRequired...)
	for _, a := range applets {
		a = clean(a)
		if a == "bin/busybox" || cw.Has(a) {
			continue
		}
		cw.Symlink(a, "/bin/busybox")
	}

	// ipvsadm and its libraries.
	if err := addBinary(cw, "usr/sbin/ipvsadm", "/usr/sbin/ipvsadm"); err != nil {
		return "", err
	}
	cw.Symlink("bin/ipvsadm", "/usr/sbin/ipvsadm")
	cw.Symlink("sbin/ipvsadm", "/usr/sbin/ipvsadm")
	for _, s := range []string{"ipvsadm-save", "ipvsadm-restore"} {
		if exists("/usr/sbin/" + s) {
			cw.File("usr/sbin/"+s, "/usr/sbin/"+s, 0o755)
		}
	}

	// Modules.
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			cw.Dir(rel, 0o755)
			return nil
		}
		cw.File(rel, p, 0o644)
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := cw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	st, _ := os.Stat(out)
	logf("kernel %s: built base initramfs (%d modules, %.1f MB gzip) in %s", k.Label, nmods, float64(st.Size())/1e6, since(t0))
	return out, nil
}

// stageModules copies the module subset, uncompressed, into
// stage/lib/modules/<release> and runs depmod there.
func stageModules(k *Kernel, stage string) (int, error) {
	depmod, err := findDepmod()
	if err != nil {
		return 0, err
	}
	full := filepath.Join(k.Root, "lib", "modules", k.Release)
	// The full tree's modules.dep gives the dependency closure (Debian ships none).
	fullDep := filepath.Join(full, "modules.dep")
	if !exists(fullDep) {
		if err := runQuiet(depmod, "-b", k.Root, k.Release); err != nil {
			return 0, err
		}
	}
	deps, err := readModulesDep(fullDep)
	if err != nil {
		return 0, err
	}
	want := map[string]bool{}
	var add func(string)
	add = func(m string) {
		if want[m] {
			return
		}
		want[m] = true
		for _, d := range deps[m] {
			add(d)
		}
	}
	for m := range deps {
		if selected(m) {
			add(m)
		}
	}
	dst := filepath.Join(stage, "lib", "modules", k.Release)
	var xzs []string
	for m := range want {
		src := filepath.Join(full, m)
		to := filepath.Join(dst, m)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return 0, err
		}
		if err := copyFile(src, to); err != nil {
			return 0, err
		}
		if strings.HasSuffix(m, ".xz") {
			xzs = append(xzs, to)
		}
	}
	if len(xzs) > 0 {
		sort.Strings(xzs)
		args := append([]string{"-d", "-T0", "-q"}, xzs...)
		if err := runQuiet("xz", args...); err != nil {
			return 0, err
		}
	}
	for _, f := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		if exists(filepath.Join(full, f)) {
			if err := copyFile(filepath.Join(full, f), filepath.Join(dst, f)); err != nil {
				return 0, err
			}
		}
	}
	if err := runQuiet(depmod, "-b", stage, k.Release); err != nil {
		return 0, err
	}
	// Drop kmod's binary indexes: busybox modprobe reads the text files.
	bins, _ := filepath.Glob(filepath.Join(dst, "modules.*.bin"))
	for _, b := range bins {
		_ = os.Remove(b)
	}
	return len(want), nil
}

func selected(m string) bool {
	for _, x := range moduleExcludes {
		if m == x || strings.HasPrefix(m, x+"/") {
			return false
		}
	}
	base := strings.TrimSuffix(strings.TrimSuffix(m, ".xz"), ".zst")
	for _, r := range moduleRoots {
		if base == r || strings.HasPrefix(m, r+"/") {
			return true
		}
	}
	return false
}

func readModulesDep(p string) (map[string][]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
	}
	return deps, sc.Err()
}

func findDepmod() (string, error) {
	for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
		if exists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("depmod"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("depmod not found: install kmod")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// addBinary adds a host executable at guest path name, plus, when it is
// dynamically linked, its loader and every library ldd lists (at the
// paths ldd prints, so the loader's default search finds them).
func addBinary(cw *cpioWriter, name, host string) error {
	cw.File(name, host, 0o755)
	interp, err := elfInterp(host)
	if err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	if interp == "" {
		return nil
	}
	libs, err := lddLibs(host)
	if err != nil {
		return err
	}
	libs = append(libs, interp)
	for _, l := range libs {
		if !cw.Has(l) {
			cw.File(l, l, 0o755)
		}
	}
	return nil
}

func lddLibs(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w\n%s", bin, err, out)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if _, after, ok := strings.Cut(l, "=> "); ok {
			if f := strings.Fields(after); len(f) > 0 && strings.HasPrefix(f[0], "/") {
				libs = append(libs, f[0])
			}
			continue
		}
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}
