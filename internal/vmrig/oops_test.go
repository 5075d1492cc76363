package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInt3Oops(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, log, want string
	}{
		// The console of the 6.12 boot that died in CI (3 Dec 2026),
		// carriage returns and terminal escapes included.
		{"6.12 CI crash", "testdata/console-int3-6.12.log", "int3 at inet6_ehashfn+0x39/0x210"},
		{"before 6.9", write("6.1", "[   12.5] int3: 0000 [#1] PREEMPT SMP NOPTI\n"+
			"[   12.5] CPU: 1 PID: 9 Comm: x Not tainted 6.1.0-57-amd64 #1\n"+
			"[   12.5] RIP: 0010:nf_hook_slow+0x12/0xb0\n"), "int3 at nf_hook_slow+0x12/0xb0"},
		{"no RIP line", write("cut", "[ 1.0] Oops: int3: 0000 [#1] SMP\n"), "int3"},
		{"another oops", write("null", "[ 3.2] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"+
			"[ 3.2] Oops: 0000 [#1] PREEMPT SMP NOPTI\n[ 3.2] RIP: 0010:ip_vs_conn_new+0x40/0x300 [ip_vs]\n"), ""},
		{"a test's own output", write("out", "int3: 0000 [#1] printed by a test\n"), ""},
		{"clean", write("clean", "vmrig init: kernel 6.12\n"), ""},
		{"missing", filepath.Join(dir, "none"), ""},
	}
	for _, tt := range tests {
		if got := int3Oops(tt.log); got != tt.want {
			t.Errorf("%s: int3Oops = %q, want %q", tt.name, got, tt.want)
		}
	}
}
