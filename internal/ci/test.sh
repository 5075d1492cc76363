#!/usr/bin/env bash
# Every check and test of the project, as CI runs it (.ci/run calls this).
# Needs Go; on Debian, as root, it installs whatever else the real-kernel
# suite needs (see internal/vmrig). Set IPVS_SKIP_VM=1 to stop before the
# VMs (on a host that cannot run 386 binaries, the 386 unit tests with them).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
modules=(. examples bench prometheus)
# step starts a step and says how long the previous one took (the whole
# run must stay within CI's 20 minutes).
step() {
	[ -z "${step_start:-}" ] || printf '    (%d s)\n' $((SECONDS - step_start))
	step_start=$SECONDS
	printf '\n==> %s\n' "$*"
}

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

step "go vet, staticcheck and go mod tidy, per module"
for m in "${modules[@]}"; do
	[ -f "$m/go.mod" ] || continue
	(cd "$m" && go vet ./... && go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./... && go mod tidy -diff)
done

step "unit tests (race detector; fuzz targets run their seed corpus)"
go test -race -count=1 ./...
# The Prometheus exporter's module (its promtool check runs where Debian's
# prometheus package is installed, and says so where not).
(cd prometheus && go test -race -count=1 ./...)

step "32-bit x86 (GOARCH=386, no race detector there): vet, test build, unit tests"
# A 32-bit int catches int(uint32) conversions and constant overflows. The
# unit tests run here if this host can execute 386 binaries; a host without
# IA32 emulation (some VM sandboxes) runs them in the VM boot below, on the
# real kernels. qemu-user (7.2) is no substitute: a Go 386 program under it
# dies of signals (preemption's SIGURG: "morestack on gsignal"; an EPIPE
# write's SIGPIPE: "exitsyscall: syscall frame is no longer valid").
GOARCH=386 go vet .
CGO_ENABLED=0 GOARCH=386 go test -c -o "$work/ipvs386.test" .
printf 'package main\n\nfunc main() {}\n' >"$work/probe.go"
(cd "$work" && GOARCH=386 go build -o probe386 probe.go)
unit386_in_vm=
if "$work/probe386" 2>/dev/null; then
	GOARCH=386 go test -count=1 ./...
else
	unit386_in_vm=1
	echo "this host cannot run 386 binaries: the 386 unit tests run in the VM boot, on the real kernels"
fi

step "the API builds everywhere: darwin and windows; linux/arm and linux/arm64, every package"
for os in darwin windows; do GOOS=$os go build . && GOOS=$os go vet . ; done
for arch in arm arm64; do GOARCH=$arch go build ./... && GOARCH=$arch go vet . ; done

# The README promises the current and the previous Go release. go.mod's
# minimum, go 1.26.0, is the previous one, and golang.org/x/sys needs it
# anyway: the code needs v0.49 or later (unix.Mmsghdr), which says go 1.26.0.
# Everything above ran on the local toolchain; the other release, fetched
# once from the module proxy (golang.org/toolchain) and cached, vets and
# builds the root module.
current_go=go1.27.4 # the current Go release: bump it with each release
case $(go env GOVERSION) in
go1.26 | go1.26.*) other_go=$current_go ;;
*) other_go=go1.26.0 ;;
esac
step "the other supported Go release, $other_go, vets and builds the root module"
GOTOOLCHAIN=$other_go go vet . && GOTOOLCHAIN=$other_go go build ./...

if [ "${IPVS_SKIP_VM:-}" = 1 ]; then step "IPVS_SKIP_VM=1: skipping the real-kernel suite"; exit 0; fi

step "real-kernel suite on Linux 5.10, 6.1, 6.12 and 7.2 (qemu, no network device, two boots at a time)"
# One job per package with real-kernel tests (TestIntegration*): the root
# package's is "integration", a subpackage's "integration-<dir>". The
# guest gets the host's /etc/services, for the port names of ipvsadm's
# rules.
runs=()
[ ! -f /etc/services ] || runs+=(-file /etc/services:/etc/services)
for dir in $(git grep -l '^func TestIntegration' -- '*_test.go' ':!bench' ':!examples' ':!prometheus' ':!internal/vmrig' | xargs -n1 dirname | sort -u); do
	name=integration
	[ "$dir" = . ] || name=integration-$(echo "$dir" | tr / -)
	go test -c -race -o "$work/$name.test" "./$dir"
	runs+=(-run "$name@25m=$work/$name.test -test.v -test.count=1 -test.run ^TestIntegration")
done
if [ -n "$unit386_in_vm" ]; then
	# The 386 unit tests (built above), with their testdata as the job's cwd.
	runs+=(-file "$root/testdata:/jobs/unit-386/testdata"
		-run "unit-386@10m=$work/ipvs386.test -test.count=1 -test.skip ^TestIntegration")
fi
# The labs share the boot: each with and without -pitfall, then a check
# that they left nothing behind in the guest. examples/labs.sh builds them
# and lists these jobs (the one list of the labs).
labjobs=$(LABS_BIN="$work/labs" examples/labs.sh vm-jobs)
while IFS= read -r job; do runs+=(-run "$job"); done <<<"$labjobs"
# The benchmark program at small sizes, so it cannot rot; its exit status
# depends on errors only, never on timings (BENCHMARKS.md has the real run).
(cd bench && CGO_ENABLED=0 go build -o "$work/ipvsbench" ./cmd/ipvsbench)
# goipvsadm (its cross-check with ipvsadm runs as the integration job of
# cmd/goipvsadm above) beside ipvsadm in the benchmark smoke.
CGO_ENABLED=0 go build -o "$work/goipvsadm" ./cmd/goipvsadm
runs+=(-file "$work/goipvsadm:/goipvsadm"
	-run "bench-smoke@5m=$work/ipvsbench -services 50 -dests 2 -rounds 1 -impls floor,ipvs-call,ipvs-batch,ipvs-reconcile,ipvs-rules,moby,cloudflare,ipvsadm,goipvsadm -goipvsadm /goipvsadm")
# The Prometheus exporter's module: its real-kernel test (a scrape over
# HTTP against ipvsadm), and its scrape benchmark at a small size.
# The exporter binary, static, in a namespace of its own: /healthz,
# /metrics against an ipvsadm-made service, a clean exit on SIGTERM.
(cd prometheus && go test -c -race -o "$work/integration-prometheus.test" . &&
	CGO_ENABLED=0 go build -o "$work/scrapebench" ./cmd/scrapebench &&
	CGO_ENABLED=0 go build -trimpath -o "$work/ipvs_exporter" ./cmd/ipvs_exporter)
runs+=(-run "integration-prometheus@10m=$work/integration-prometheus.test -test.v -test.count=1 -test.run ^TestIntegration")
runs+=(-run "scrapebench-smoke@5m=$work/scrapebench -services 50 -dests 2 -rounds 1")
runs+=(-file "$work/ipvs_exporter:/opt/ipvs_exporter" -file "$root/prometheus/cmd/ipvs_exporter/smoke.sh:/opt/exporter-smoke.sh"
	-run "exporter-smoke@2m=guest:/usr/bin/unshare -n /bin/sh /opt/exporter-smoke.sh /opt/ipvs_exporter")
# Every job of a kernel runs in one boot; -kernel all boots the four
# kernels (Debian bullseye's 5.10, bookworm's 6.1 and 6.12, forky's 7.2)
# two at a time, so both cores are busy.
go run ./internal/vmrig -kernel all -parallel 2 -require-tests -timeout 40m "${runs[@]}" | tee "$work/vm.log"
rc=${PIPESTATUS[0]}
# Closing lines: per kernel, its jobs, its go tests (top level and
# subtests) and its wall time, as vmrig counted them; then one line for all
# kernels: the real-kernel tests (top level) and the VM jobs (labs,
# pitfalls, benchmark smoke).
printf '    (%d s; the whole run %d s)\n' $((SECONDS - step_start)) "$SECONDS"
grep -E '^vmrig: kernel .* summary: ' "$work/vm.log" | sed 's/^vmrig: /real-kernel: /' || true
passed=$(grep -cE -- '^--- PASS: TestIntegration|^VMRIG-RESULT .* exit=0 ' "$work/vm.log" || true)
failed=$(grep -cE -- '^--- FAIL: TestIntegration|^VMRIG-RESULT .* exit=[1-9]' "$work/vm.log" || true)
echo "real-kernel: $passed passed, $failed failed"
exit "$rc"
