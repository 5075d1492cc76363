//go:build linux

// Package racetest is a tiny test package used to check that a `go test -c
// -race` binary (dynamically linked against libc) runs in the vmrig guest.
package racetest

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestIntegrationRace(t *testing.T) {
	if os.Getenv("VMRIG_GUEST") == "" {
		t.Skip("only runs inside the vmrig guest")
	}
	var n atomic.Int64
	var mu sync.Mutex
	m := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < 1000; k++ {
				n.Add(1)
				mu.Lock()
				m[k%10] += i
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if n.Load() != 8000 {
		t.Fatalf("n = %d", n.Load())
	}
	out, err := exec.Command("ipvsadm", "-Ln").CombinedOutput()
	if err != nil {
		t.Fatalf("ipvsadm -Ln: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "IP Virtual Server") {
		t.Fatalf("unexpected ipvsadm output:\n%s", out)
	}
	t.Logf("kernel %s, race detector on", os.Getenv("VMRIG_KERNEL"))
}
