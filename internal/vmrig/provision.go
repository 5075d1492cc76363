//go:build linux

package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// hostPackages are the Debian packages the rig needs on the host, with a
// file that proves each one is usable.
var hostPackages = []struct{ pkg, file string }{
	{"qemu-system-x86", "/usr/bin/qemu-system-x86_64"},
	{"busybox-static", "/bin/busybox"},
	{"cpio", "/usr/bin/cpio"},
	{"ipvsadm", "/usr/sbin/ipvsadm"},
	{"xz-utils", "/usr/bin/xz"},
	{"kmod", "/usr/sbin/depmod"},
}

const offDebianHelp = `vmrig needs a Debian (or Debian-derived) host with apt-get, dpkg-deb and apt-cache.
It installs: qemu-system-x86 busybox-static cpio ipvsadm xz-utils kmod
and downloads the Debian kernel packages linux-image-6.1.0-*-amd64 and
linux-image-6.12.*+deb12-amd64 from the bookworm / bookworm-security archive.
On another distribution, run it in a debian:12 container or VM.`

// aptUpdated records whether this process already ran apt-get update.
var aptUpdated bool

func aptUpdate() error {
	if aptUpdated {
		return nil
	}
	logf("running apt-get update")
	if err := runLogged("apt-get", "update"); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	aptUpdated = true
	return nil
}

// provisionHost installs the missing host packages.
func provisionHost() error {
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found.\n%s", tool, offDebianHelp)
		}
	}
	var missing []string
	for _, p := range hostPackages {
		if !packageInstalled(p.pkg) || !exists(p.file) {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return checkBusyboxStatic()
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("missing host packages %s and not root: run `sudo apt-get install -y --no-install-recommends %s`",
			strings.Join(missing, " "), strings.Join(missing, " "))
	}
	t0 := time.Now()
	args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
	logf("installing %s", strings.Join(missing, " "))
	if err := runLogged("apt-get", args...); err != nil {
		// Stale or absent package lists are the usual cause.
		if err := aptUpdate(); err != nil {
			return err
		}
		if err := runLogged("apt-get", args...); err != nil {
			return fmt.Errorf("apt-get install %s: %w", strings.Join(missing, " "), err)
		}
	}
	logf("installed host packages in %s", since(t0))
	return checkBusyboxStatic()
}

func packageInstalled(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.HasSuffix(strings.TrimSpace(string(out)), " installed")
}

func checkBusyboxStatic() error {
	interp, err := elfInterp("/bin/busybox")
	if err != nil {
		return err
	}
	if interp != "" {
		return errors.New("/bin/busybox is dynamically linked: install busybox-static")
	}
	return nil
}

// elfInterp returns the PT_INTERP of an ELF file ("" for static binaries).
func elfInterp(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return "", err
			}
			return strings.TrimRight(string(b), "\x00"), nil
		}
	}
	return "", nil
}

// Kernel is one unpacked Debian kernel package.
type Kernel struct {
	Label   string // "6.1" or "6.12"
	Package string // linux-image-...
	Version string // Debian package version
	Release string // uname -r, the lib/modules directory name
	Root    string // unpacked package root
	Vmlinuz string
}

// resolveKernelPackage finds the package name for a kernel label.
func resolveKernelPackage(label string) (string, error) {
	for attempt := 0; attempt < 2; attempt++ {
		var name string
		var err error
		switch label {
		case "6.1":
			name, err = defaultKernelPackage()
		case "6.12":
			name, err = newestKernelPackage(`^linux-image-6\.12\.(\d+)\+deb12-amd64$`, "linux-image-6.12.")
		default:
			return "", fmt.Errorf("unknown kernel %q (want 6.1, 6.12 or all)", label)
		}
		if err == nil {
			return name, nil
		}
		if attempt == 0 {
			logf("kernel %s: %v; refreshing package lists", label, err)
			if err := aptUpdate(); err != nil {
				return "", err
			}
			continue
		}
		return "", err
	}
	panic("unreachable")
}

// defaultKernelPackage is what the candidate linux-image-amd64 depends on.
func defaultKernelPackage() (string, error) {
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	re := regexp.MustCompile(`Depends: (linux-image-6\.1\.[0-9]+-[0-9]+-amd64)\s*$`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1], nil
		}
	}
	return "", errors.New("linux-image-amd64 does not depend on a linux-image-6.1.*-amd64 package")
}

// newestKernelPackage picks the highest-numbered package matching re that
// has an install candidate.
func newestKernelPackage(re, prefix string) (string, error) {
	out, err := exec.Command("apt-cache", "pkgnames", prefix).Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache pkgnames %s: %w", prefix, err)
	}
	rx := regexp.MustCompile(re)
	type cand struct {
		name string
		n    int
	}
	var cands []cand
	for _, l := range strings.Fields(string(out)) {
		if m := rx.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			cands = append(cands, cand{l, n})
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].n > cands[j].n })
	for _, c := range cands {
		if v, err := candidateVersion(c.name); err == nil && v != "" {
			return c.name, nil
		}
	}
	return "", fmt.Errorf("no package matches %s", re)
}

func candidateVersion(pkg string) (string, error) {
	out, err := exec.Command("apt-cache", "policy", pkg).Output()
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "Candidate: "); ok && v != "(none)" {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s has no install candidate", pkg)
}

// fetchKernel downloads and unpacks a kernel package into the cache.
func fetchKernel(cache, label string) (*Kernel, error) {
	pkg, err := resolveKernelPackage(label)
	if err != nil {
		return nil, err
	}
	ver, err := candidateVersion(pkg)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Label: label, Package: pkg, Version: ver}
	k.Root = filepath.Join(cache, "kernels", pkg+"_"+strings.ReplaceAll(ver, ":", "%3a"))
	if !exists(filepath.Join(k.Root, ".complete")) {
		t0 := time.Now()
		debs := filepath.Join(cache, "debs")
		if err := os.MkdirAll(debs, 0o755); err != nil {
			return nil, err
		}
		deb, err := downloadDeb(debs, pkg, ver)
		if err != nil {
			return nil, err
		}
		logf("kernel %s: unpacking %s", label, filepath.Base(deb))
		tmp := k.Root + ".tmp"
		_ = os.RemoveAll(tmp)
		if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
			return nil, err
		}
		if err := runQuiet("dpkg-deb", "-x", deb, tmp); err != nil {
			return nil, err
		}
		_ = os.RemoveAll(k.Root)
		if err := os.Rename(tmp, k.Root); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(k.Root, ".complete"), []byte(pkg+" "+ver+"\n"), 0o644); err != nil {
			return nil, err
		}
		// The .deb is no longer needed once unpacked.
		_ = os.Remove(deb)
		logf("kernel %s: fetched and unpacked %s %s in %s", label, pkg, ver, since(t0))
	}
	vm, _ := filepath.Glob(filepath.Join(k.Root, "boot", "vmlinuz-*"))
	if len(vm) != 1 {
		return nil, fmt.Errorf("%s: expected one boot/vmlinuz-*, found %d", k.Root, len(vm))
	}
	k.Vmlinuz = vm[0]
	k.Release = strings.TrimPrefix(filepath.Base(vm[0]), "vmlinuz-")
	if !exists(filepath.Join(k.Root, "lib", "modules", k.Release, "kernel")) {
		return nil, fmt.Errorf("%s: no lib/modules/%s", k.Root, k.Release)
	}
	return k, nil
}

func downloadDeb(dir, pkg, ver string) (string, error) {
	want := filepath.Join(dir, pkg+"_"+strings.ReplaceAll(ver, ":", "%3a")+"_amd64.deb")
	if exists(want) {
		return want, nil
	}
	logf("downloading %s=%s", pkg, ver)
	dl := func() error {
		cmd := exec.Command("apt-get", "download", pkg+"="+ver)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logWriter(), logWriter()
		return cmd.Run()
	}
	if err := dl(); err != nil {
		if err := aptUpdate(); err != nil {
			return "", err
		}
		if err := dl(); err != nil {
			return "", fmt.Errorf("apt-get download %s=%s: %w", pkg, ver, err)
		}
	}
	if !exists(want) {
		m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(m) == 0 {
			return "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, dir)
		}
		return m[len(m)-1], nil
	}
	return want, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func runLogged(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdout, cmd.Stderr = logWriter(), logWriter()
	return cmd.Run()
}

func runQuiet(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
