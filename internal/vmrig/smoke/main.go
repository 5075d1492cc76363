//go:build linux

// Command smoke is the vmrig self-test payload. Inside the guest it checks
// that the generic netlink family "IPVS" resolves, that ipvsadm works, and
// that IPVS state is per network namespace.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "smoke: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("smoke: OK")
}

func run() error {
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	fmt.Printf("smoke: running as pid %d, uid %d\n", os.Getpid(), os.Getuid())

	id, ver, err := genlFamily("IPVS")
	if err != nil {
		return fmt.Errorf("resolve genl family IPVS: %w", err)
	}
	fmt.Printf("smoke: genl family IPVS id=%d version=%d\n", id, ver)

	if err := sh("ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -m && ipvsadm -Ln"); err != nil {
		return err
	}
	out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.0.0.1:80") {
		return fmt.Errorf("service missing in init netns: %v\n%s", err, out)
	}

	// A fresh network namespace on a locked thread: empty IPVS table there.
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		// The thread is never unlocked, so it dies with this goroutine
		// instead of going back to the pool in the wrong namespace.
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		id2, _, err := genlFamily("IPVS")
		if err != nil {
			errc <- fmt.Errorf("netns: resolve IPVS: %w", err)
			return
		}
		fmt.Printf("smoke: netns: genl family IPVS id=%d\n", id2)
		// Children forked from this thread inherit its namespace.
		out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
		if err != nil {
			errc <- fmt.Errorf("netns: ipvsadm -Ln: %v\n%s", err, out)
			return
		}
		if strings.Contains(string(out), "10.0.0.1:80") {
			errc <- fmt.Errorf("netns sees the init netns service:\n%s", out)
			return
		}
		if err := sh("ip link set lo up && ipvsadm -A -u 10.9.9.9:53 -s wrr && ipvsadm -Ln"); err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return err
	}
	out, _ = exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if strings.Contains(string(out), "10.9.9.9:53") {
		return fmt.Errorf("init netns sees the netns service:\n%s", out)
	}
	return sh("ipvsadm -C")
}

func sh(script string) error {
	cmd := exec.Command("/bin/sh", "-c", "set -ex; "+script)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%q: %w", script, err)
	}
	return nil
}

// genlFamily asks the generic netlink controller for a family by name
// (CTRL_CMD_GETFAMILY), which also autoloads ip_vs on kernels >= 5.16.
func genlFamily(name string) (id uint16, version uint32, err error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, 16 /* NETLINK_GENERIC */)
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return 0, 0, err
	}
	const (
		genlIDCtrl         = 0x10
		ctrlCmdGetFamily   = 3
		ctrlAttrFamilyID   = 1
		ctrlAttrFamilyName = 2
		ctrlAttrVersion    = 3
	)
	attr := append([]byte(name), 0)
	alen := 4 + len(attr)
	body := []byte{ctrlCmdGetFamily, 1, 0, 0}
	body = binary.LittleEndian.AppendUint16(body, uint16(alen))
	body = binary.LittleEndian.AppendUint16(body, ctrlAttrFamilyName)
	body = append(body, attr...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	msg := binary.LittleEndian.AppendUint32(nil, uint32(16+len(body)))
	msg = binary.LittleEndian.AppendUint16(msg, genlIDCtrl)
	msg = binary.LittleEndian.AppendUint16(msg, syscall.NLM_F_REQUEST)
	msg = binary.LittleEndian.AppendUint32(msg, 1)
	msg = binary.LittleEndian.AppendUint32(msg, 0)
	msg = append(msg, body...)
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 65536)
	n, _, err := syscall.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return 0, 0, err
	}
	for _, m := range msgs {
		if m.Header.Type == syscall.NLMSG_ERROR {
			code := int32(binary.LittleEndian.Uint32(m.Data[:4]))
			return 0, 0, syscall.Errno(-code)
		}
		data := m.Data[4:]
		for len(data) >= 4 {
			l := int(binary.LittleEndian.Uint16(data[:2]))
			t := binary.LittleEndian.Uint16(data[2:4])
			if l < 4 || l > len(data) {
				break
			}
			v := data[4:l]
			switch t {
			case ctrlAttrFamilyID:
				id = binary.LittleEndian.Uint16(v)
			case ctrlAttrVersion:
				version = binary.LittleEndian.Uint32(v)
			case ctrlAttrFamilyName:
				if got := string(bytes.TrimRight(v, "\x00")); got != name {
					return 0, 0, fmt.Errorf("reply for %q", got)
				}
			}
			data = data[(l+3)&^3:]
		}
	}
	if id == 0 {
		return 0, 0, fmt.Errorf("no family id in reply")
	}
	return id, version, nil
}
