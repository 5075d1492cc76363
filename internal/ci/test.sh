#!/usr/bin/env bash
# Every check and test of the project, as CI runs it (.ci/run calls this).
# Needs Go; on Debian, as root, it installs whatever else the real-kernel
# suite needs (see internal/vmrig). Set IPVS_SKIP_VM=1 to stop before the VMs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
modules=(. examples bench)
step() { printf '\n==> %s\n' "$*"; }

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

step "the API builds everywhere"
for os in darwin windows; do GOOS=$os go build . && GOOS=$os go vet . ; done

if [ "${IPVS_SKIP_VM:-}" = 1 ]; then echo "IPVS_SKIP_VM=1: skipping the real-kernel suite"; exit 0; fi

step "real-kernel suite on Linux 6.1 and 6.12 (qemu, no network device)"
go test -c -race -o "$work/ipvs.test" .
runs=(-run "integration@25m=$work/ipvs.test -test.v -test.count=1 -test.run ^TestIntegration")
# The labs share the boot: each with and without -pitfall, then a check
# that they left nothing behind in the guest. examples/labs.sh builds them
# and lists these jobs (the one list of the labs).
labjobs=$(LABS_BIN="$work/labs" examples/labs.sh vm-jobs)
while IFS= read -r job; do runs+=(-run "$job"); done <<<"$labjobs"
# The benchmark program at small sizes, so it cannot rot; its exit status
# depends on errors only, never on timings (BENCHMARKS.md has the real run).
(cd bench && CGO_ENABLED=0 go build -o "$work/ipvsbench" ./cmd/ipvsbench)
runs+=(-run "bench-smoke@5m=$work/ipvsbench -services 50 -dests 2 -rounds 1")
go run ./internal/vmrig -kernel all -require-tests -timeout 40m "${runs[@]}" | tee "$work/vm.log"
rc=${PIPESTATUS[0]}
# One closing line for both kernels: the real-kernel tests (top level and
# subtests) and the VM jobs (labs, pitfalls, benchmark smoke).
passed=$(grep -cE -- '^--- PASS: TestIntegration|^VMRIG-RESULT .* exit=0 ' "$work/vm.log" || true)
failed=$(grep -cE -- '^--- FAIL: TestIntegration|^VMRIG-RESULT .* exit=[1-9]' "$work/vm.log" || true)
echo "real-kernel: $passed passed, $failed failed"
exit "$rc"
