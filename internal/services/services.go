// Package services reads services(5) files, such as /etc/services, for the
// packages that name ports as ipvsadm does.
package services

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/ipvs-go/ipvs"
)

// Each calls fn for each entry of r, in the file's order, with its names
// (the official name first, then its aliases), its port and its protocol.
// Entries of protocols other than tcp, udp and sctp, and malformed lines,
// are skipped; comments start with '#'. names is valid only during the
// call.
func Each(r io.Reader, fn func(names []string, port uint16, proto ipvs.Protocol)) error {
	sc := bufio.NewScanner(r)
	var names []string
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		num, protoName, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			continue
		}
		var proto ipvs.Protocol
		switch protoName {
		case "tcp":
			proto = ipvs.TCP
		case "udp":
			proto = ipvs.UDP
		case "sctp":
			proto = ipvs.SCTP
		default:
			continue
		}
		names = append(append(names[:0], f[0]), f[2:]...)
		fn(names, uint16(n), proto)
	}
	return sc.Err()
}
