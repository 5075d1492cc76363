#!/bin/sh
# Builds the labs as static binaries and runs them all, with and without
# -pitfall: natively (as root, on a kernel with IPVS) or in the VM rig
# (../internal/vmrig) on Debian's 5.10, 6.1, 6.12 and 7.2 kernels.
#
#   ./labs.sh native              run here; needs root and IPVS
#   ./labs.sh vm [6.1|6.12|all]   run in qemu (default: all)
#   ./labs.sh vm-jobs             only print the VM rig's jobs, one -run
#                                 value a line (internal/ci/test.sh adds
#                                 them to the boot of the real-kernel suite)
#
# The binaries go to $LABS_BIN (default: a new temporary directory).
# Exit status 0 only if every lab, and every pitfall check, passed.
set -eu
cd "$(dirname "$0")"

# The labs, in the order they run. This is the one list of them: the VM
# jobs of this script and of the CI are made from it.
labs="nat dr ipip failover health"

out=${LABS_BIN:-$(mktemp -d)}
pkgs=
for l in $labs; do pkgs="$pkgs ./$l"; done
CGO_ENABLED=0 go build -o "$out/" $pkgs

# vm_jobs prints the VM rig's -run values, one a line: a snapshot of the
# guest's links, each lab with and without -pitfall, then a check that the
# labs left nothing behind (no namespace, no new link).
vm_jobs() {
	printf '%s\n' 'before=guest:/bin/sh -c "ls /sys/class/net > /tmp/links-before"'
	for l in $labs; do
		printf '%s\n' "$l@5m=$out/$l" "$l-pitfall@5m=$out/$l -pitfall"
	done
	printf '%s\n' 'leftovers=guest:/bin/sh -c "ls /sys/class/net | diff /tmp/links-before - && test -z \"$(ls -A /run/netns)\" && echo nothing left behind"'
}

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
	jobs=$(vm_jobs)
	set -- -kernel "${2:-all}"
	while IFS= read -r j; do
		set -- "$@" -run "$j"
	done <<EOF
$jobs
EOF
	cd .. && exec go run ./internal/vmrig "$@"
	;;
vm-jobs)
	vm_jobs
	;;
*)
	echo "usage: $0 native | vm [6.1|6.12|all] | vm-jobs" >&2
	exit 2
	;;
esac
