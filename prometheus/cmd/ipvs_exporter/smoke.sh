#!/bin/sh
# A smoke test of the ipvs_exporter binary in a test VM (see CI): run it in
# a network namespace of its own, e.g. `unshare -n sh smoke.sh BINARY`.
# /healthz must answer ok and /metrics must show ipvs_up 1 and the service
# ipvsadm made; SIGTERM must stop it cleanly.
set -eu
bin=$1
ip link set lo up
ipvsadm -A -t 10.99.0.1:80 -s rr
ipvsadm -a -t 10.99.0.1:80 -r 10.99.1.1:8080 -m -w 3
"$bin" --listen 127.0.0.1:9748 &
pid=$!
i=0
until health=$(wget -qO- http://127.0.0.1:9748/healthz 2>/dev/null); do
	i=$((i + 1))
	[ "$i" -lt 50 ] || { echo "FAIL: /healthz did not answer"; kill "$pid"; exit 1; }
	sleep 0.1
done
[ "$health" = ok ] || { echo "FAIL: /healthz said: $health"; kill "$pid"; exit 1; }
metrics=$(wget -qO- http://127.0.0.1:9748/metrics)
for want in 'ipvs_up 1' 'ipvs_services 1' 'ipvs_destination_weight{destination="10.99.1.1:8080",service="TCP 10.99.0.1:80"} 3'; do
	printf '%s\n' "$metrics" | grep -qxF "$want" || { echo "FAIL: /metrics lacks: $want"; kill "$pid"; exit 1; }
done
kill -TERM "$pid"
wait "$pid" || { echo "FAIL: ipvs_exporter exited with $? after SIGTERM"; exit 1; }
ipvsadm -C
echo "PASS: /healthz ok, /metrics has $(printf '%s\n' "$metrics" | grep -vc '^#') series, clean exit on SIGTERM"
