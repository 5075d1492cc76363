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
linux-image-6.12.*+deb12-amd64 from the bookworm / bookworm-security archive
(-kernel 5.10 and 7.2 come from bullseye and forky through a private apt state).
On another distribution, run it in a debian:12 container or VM.`

// aptRepo is one apt configuration: the host's own (dir == "") or a private
// sources list, lists and cache under dir for a suite the host does not use,
// so the host's apt sources and state stay untouched.
type aptRepo struct {
	suite   string // Debian suite the kernels come from
	dir     string // private state directory, or "" for the host's apt
	updated bool   // apt-get update already ran in this process
}

// hostApt is the host's apt; its sources provide bookworm's kernels.
var hostApt = &aptRepo{suite: "bookworm"}

// opts are the apt-get/apt-cache options selecting the private state.
func (a *aptRepo) opts() []string {
	if a.dir == "" {
		return nil
	}
	return []string{
		"-o", "Dir::Etc::sourcelist=" + filepath.Join(a.dir, "sources.list"),
		"-o", "Dir::Etc::sourceparts=-",
		"-o", "Dir::State::lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
	}
}

func (a *aptRepo) command(tool string, args ...string) *exec.Cmd {
	cmd := exec.Command(tool, append(a.opts(), args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd
}

func (a *aptRepo) update() error {
	if a.updated {
		return nil
	}
	logf("running apt-get update (%s)", a.name())
	cmd := a.command("apt-get", "update")
	cmd.Stdout, cmd.Stderr = logWriter(), logWriter()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apt-get update (%s): %w", a.name(), err)
	}
	a.updated = true
	if a.dir != "" {
		return os.WriteFile(filepath.Join(a.dir, "updated"), nil, 0o644)
	}
	return nil
}

func (a *aptRepo) name() string {
	if a.dir == "" {
		return "host sources"
	}
	return "private " + a.suite + " sources"
}

// privateListsMaxAge is how long a private suite's package lists are used
// before they are refreshed: testing suites drop superseded kernels from the
// pool soon after a new upload.
const privateListsMaxAge = 24 * time.Hour

// privateApt sets up (once) the private apt state for suite under
// cache/apt/<suite>, pointing at the host's Debian mirror, and refreshes its
// lists when they are missing or older than privateListsMaxAge.
func privateApt(cache, suite string) (*aptRepo, error) {
	a := &aptRepo{suite: suite, dir: filepath.Join(cache, "apt", suite)}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	signed := ""
	if exists(debianKeyring) {
		signed = "[signed-by=" + debianKeyring + "] "
	}
	src := fmt.Sprintf("deb %s%s %s main\n", signed, debianMirror(), suite)
	if old, err := os.ReadFile(filepath.Join(a.dir, "sources.list")); err != nil || string(old) != src {
		if err := os.WriteFile(filepath.Join(a.dir, "sources.list"), []byte(src), 0o644); err != nil {
			return nil, err
		}
		_ = os.Remove(filepath.Join(a.dir, "updated"))
	}
	st, err := os.Stat(filepath.Join(a.dir, "updated"))
	if err == nil && time.Since(st.ModTime()) < privateListsMaxAge {
		return a, nil
	}
	if err := a.update(); err != nil {
		if st == nil {
			return nil, err
		}
		logf("%v; using the package lists from %s", err, st.ModTime().Format(time.DateTime))
	}
	return a, nil
}

const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// debianMirror is the first Debian archive URI (ending in /debian) in the
// host's apt sources, so every suite comes from the mirror the host uses.
func debianMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append([]string{"/etc/apt/sources.list"}, files...)
	re := regexp.MustCompile(`(?m)(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(https?://\S+/debian)/?(?:\s|$)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := re.FindSubmatch(b); m != nil {
			return string(m[1])
		}
	}
	return "http://deb.debian.org/debian"
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
		if err := hostApt.update(); err != nil {
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

// Kernel is one unpacked Debian kernel.
type Kernel struct {
	Label   string // "5.10", "6.1", "6.12" or "7.2"
	Suite   string // Debian suite the packages come from
	Package string // linux-image-... or linux-binary-...
	Version string // Debian package version
	Release string // uname -r, the lib/modules directory name
	Root    string // unpacked package root
	Vmlinuz string
}

// kernelLabels are the -kernel values, oldest first.
var kernelLabels = []string{"5.10", "6.1", "6.12", "7.2"}

// kernelSource says where a label's packages come from.
type kernelSource struct {
	suite   string // Debian suite
	private bool   // not in the host's sources: use a private apt state
	// find returns the package holding vmlinuz.
	find func(a *aptRepo) (string, error)
	// extra returns the packages unpacked along with it (same version).
	extra func(pkg string) []string
}

var kernelSources = map[string]kernelSource{
	"5.10": {suite: "bullseye", private: true, find: func(a *aptRepo) (string, error) {
		return newestKernelPackage(a, `^linux-image-5\.10\.0-(\d+)-amd64$`, "linux-image-5.10.0-")
	}},
	"6.1": {suite: "bookworm", find: defaultKernelPackage},
	"6.12": {suite: "bookworm", find: func(a *aptRepo) (string, error) {
		return newestKernelPackage(a, `^linux-image-6\.12\.(\d+)\+deb12-amd64$`, "linux-image-6.12.")
	}},
	// From 7.x Debian splits the kernel: linux-binary-* has
	// usr/lib/modules/<release>/vmlinuz, linux-modules-* the modules and
	// linux-base-* modules.builtin and modules.order. linux-image-* is only
	// a signed wrapper.
	"7.2": {suite: "forky", private: true, find: func(a *aptRepo) (string, error) {
		return newestKernelPackage(a, `^linux-binary-7\.2\.(\d+)\+deb14-amd64$`, "linux-binary-7.2.")
	}, extra: func(pkg string) []string {
		rest := strings.TrimPrefix(pkg, "linux-binary-")
		return []string{"linux-modules-" + rest, "linux-base-" + rest}
	}},
}

// kernelApt returns the apt configuration that provides a label's kernel.
func kernelApt(cache, label string) (*aptRepo, error) {
	src, ok := kernelSources[label]
	if !ok {
		return nil, fmt.Errorf("unknown kernel %q (want %s or all)", label, strings.Join(kernelLabels, ", "))
	}
	if !src.private {
		return hostApt, nil
	}
	return privateApt(cache, src.suite)
}

// resolveKernelPackage finds the package name for a kernel label.
func resolveKernelPackage(a *aptRepo, label string) (string, error) {
	for attempt := 0; attempt < 2; attempt++ {
		name, err := kernelSources[label].find(a)
		if err == nil {
			return name, nil
		}
		if attempt == 0 {
			logf("kernel %s: %v; refreshing package lists", label, err)
			if err := a.update(); err != nil {
				return "", err
			}
			continue
		}
		return "", err
	}
	panic("unreachable")
}

// defaultKernelPackage is what the candidate linux-image-amd64 depends on.
func defaultKernelPackage(a *aptRepo) (string, error) {
	out, err := a.command("apt-cache", "depends", "linux-image-amd64").Output()
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
func newestKernelPackage(a *aptRepo, re, prefix string) (string, error) {
	out, err := a.command("apt-cache", "pkgnames", prefix).Output()
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
		if v, err := candidateVersion(a, c.name); err == nil && v != "" {
			return c.name, nil
		}
	}
	return "", fmt.Errorf("no package matches %s", re)
}

func candidateVersion(a *aptRepo, pkg string) (string, error) {
	out, err := a.command("apt-cache", "policy", pkg).Output()
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

// fetchKernel downloads and unpacks a kernel's packages into the cache.
func fetchKernel(cache, label string) (*Kernel, error) {
	a, err := kernelApt(cache, label)
	if err != nil {
		return nil, err
	}
	pkg, err := resolveKernelPackage(a, label)
	if err != nil {
		return nil, err
	}
	ver, err := candidateVersion(a, pkg)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Label: label, Suite: a.suite, Package: pkg, Version: ver}
	k.Root = filepath.Join(cache, "kernels", pkg+"_"+strings.ReplaceAll(ver, ":", "%3a"))
	if !exists(filepath.Join(k.Root, ".complete")) {
		pkgs := []string{pkg}
		if x := kernelSources[label].extra; x != nil {
			pkgs = append(pkgs, x(pkg)...)
		}
		if err := unpackKernel(cache, a, k, pkgs); err != nil {
			return nil, err
		}
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

// unpackKernel downloads pkgs (all at k.Version) and unpacks them into
// k.Root in the classic layout (boot/vmlinuz-<release>, lib/modules).
func unpackKernel(cache string, a *aptRepo, k *Kernel, pkgs []string) error {
	t0 := time.Now()
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	tmp := k.Root + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	var files []string
	for _, p := range pkgs {
		deb, err := downloadDeb(a, debs, p, k.Version)
		if err != nil {
			return err
		}
		logf("kernel %s: unpacking %s", k.Label, filepath.Base(deb))
		if err := runQuiet("dpkg-deb", "-x", deb, tmp); err != nil {
			return err
		}
		files = append(files, deb)
	}
	if err := classicLayout(tmp); err != nil {
		return err
	}
	_ = os.RemoveAll(k.Root)
	if err := os.Rename(tmp, k.Root); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(k.Root, ".complete"), []byte(strings.Join(pkgs, " ")+" "+k.Version+"\n"), 0o644); err != nil {
		return err
	}
	// The .debs are no longer needed once unpacked.
	for _, f := range files {
		_ = os.Remove(f)
	}
	logf("kernel %s: fetched and unpacked %s %s from %s in %s", k.Label, strings.Join(pkgs, " "), k.Version, k.Suite, since(t0))
	return nil
}

// classicLayout turns a usr/lib/modules/<release>/vmlinuz tree (Debian 7.x
// packages) into the boot/vmlinuz-<release> + lib/modules layout the rest of
// the rig and depmod -b use. Trees already in that layout are left alone.
func classicLayout(root string) error {
	if exists(filepath.Join(root, "lib")) || !exists(filepath.Join(root, "usr", "lib", "modules")) {
		return nil
	}
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		return err
	}
	vm, _ := filepath.Glob(filepath.Join(root, "usr", "lib", "modules", "*", "vmlinuz"))
	if len(vm) != 1 {
		return fmt.Errorf("%s: expected one usr/lib/modules/*/vmlinuz, found %d", root, len(vm))
	}
	release := filepath.Base(filepath.Dir(vm[0]))
	if err := os.MkdirAll(filepath.Join(root, "boot"), 0o755); err != nil {
		return err
	}
	return os.Rename(vm[0], filepath.Join(root, "boot", "vmlinuz-"+release))
}

func downloadDeb(a *aptRepo, dir, pkg, ver string) (string, error) {
	want := filepath.Join(dir, pkg+"_"+strings.ReplaceAll(ver, ":", "%3a")+"_amd64.deb")
	if exists(want) {
		return want, nil
	}
	logf("downloading %s=%s (%s)", pkg, ver, a.suite)
	dl := func() error {
		cmd := a.command("apt-get", "download", pkg+"="+ver)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logWriter(), logWriter()
		return cmd.Run()
	}
	if err := dl(); err != nil {
		if err := a.update(); err != nil {
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
