#!/usr/bin/env bash
# Runs the article's labs (NAT, direct routing, IPIP, the redundant pair),
# each with and without -pitfall: natively when this kernel has IPVS and we
# are root, otherwise in the VM rig on Debian's 5.10, 6.1, 6.12 and 7.2 kernels.
set -euo pipefail
cd "$(dirname "$0")/../../examples"
if [ "$(id -u)" = 0 ] && [ -e /proc/net/ip_vs ]; then
	exec ./labs.sh native
fi
echo "this kernel has no IPVS loaded (or we are not root): running the labs in the VM rig" >&2
exec ./labs.sh vm "${1:-all}"
