#!/bin/sh
# Builds the labs as static binaries and runs them all, with and without
# -pitfall: natively (as root, on a kernel with IPVS) or in the VM rig
# (../internal/vmrig) on Debian's 6.1 and 6.12 kernels.
#
#   ./labs.sh native              run here; needs root and IPVS
#   ./labs.sh vm [6.1|6.12|all]   run in qemu (default: all)
#
# Exit status 0 only if every lab, and every pitfall check, passed.
set -eu
cd "$(dirname "$0")"
out=${LABS_BIN:-$(mktemp -d)}
CGO_ENABLED=0 go build -o "$out/" ./nat ./dr ./ipip ./failover
labs="nat dr ipip failover"
case "${1:-}" in
native)
	rc=0
	for l in $labs; do
		for p in "" -pitfall; do
			echo "##### $l $p"
			"$out/$l" $p || rc=1
		done
	done
	exit $rc
	;;
vm)
	set -- -kernel "${2:-all}"
	set -- "$@" -run 'before=guest:/bin/sh -c "ls /sys/class/net > /tmp/links-before"'
	for l in $labs; do
		set -- "$@" -run "$l=$out/$l" -run "$l-pitfall=$out/$l -pitfall"
	done
	# Nothing may be left behind: no namespace, no new link in the guest.
	set -- "$@" -run 'leftovers=guest:/bin/sh -c "ls /sys/class/net | diff /tmp/links-before - && test -z \"$(ls -A /run/netns)\" && echo nothing left behind"'
	cd .. && exec go run ./internal/vmrig "$@"
	;;
*)
	echo "usage: $0 native | vm [6.1|6.12|all]" >&2
	exit 2
	;;
esac
