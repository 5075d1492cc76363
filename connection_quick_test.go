package ipvs

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
)

// quickSame parses line (after the header of the format) with and without
// connQuickHead and fails unless both give the same entry or both fail;
// it reports whether connQuickHead took the line.
func quickSame(t *testing.T, sync bool, line []byte) bool {
	t.Helper()
	var cn Connection
	_, took := connQuickHead(line, &cn)
	var got [2]Connection
	var errs [2]error
	for i, noQuick := range []bool{false, true} {
		s := &connScanner{line: 2, sync: sync, noQuick: noQuick}
		got[i], errs[i] = s.parse(line)
	}
	if fmt.Sprint(errs[0]) != fmt.Sprint(errs[1]) || got[0] != got[1] {
		t.Fatalf("%q: quick %+v, %v; general %+v, %v", line, got[0], errs[0], got[1], errs[1])
	}
	return took
}

// The quick head decodes what the general parse decodes, the same, and
// leaves it every other line.
func TestConnQuickHead(t *testing.T) {
	for _, sync := range []bool{false, true} {
		var buf bytes.Buffer
		genConnections(&buf, sync, 2000)
		lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))[1:]
		took := 0
		for _, l := range lines {
			if quickSame(t, sync, l) {
				took++
			}
		}
		// genConnections writes IPv6 entries 1 in 16.
		if took < len(lines)*14/16 {
			t.Fatalf("sync=%v: the quick head took %d of %d lines", sync, took, len(lines))
		}
		// Mutations of the head: hex digits of both cases and out of
		// range, other separators, other protocols.
		rng := rand.New(rand.NewPCG(1, uint64(len(lines))))
		const alphabet = "0123456789ABCDEFabcdefG@`/:; \tx\x00\xff"
		took = 0
		for i := range 200000 {
			l := bytes.Clone(lines[i%len(lines)])
			for range 1 + rng.IntN(3) {
				if rng.IntN(8) == 0 {
					copy(l, []string{"UDP", "SCT", "IP ", "TC ", "tcp"}[rng.IntN(5)])
					continue
				}
				l[rng.IntN(min(len(l), 48))] = alphabet[rng.IntN(len(alphabet))]
			}
			if quickSame(t, sync, l) {
				took++
			}
		}
		t.Logf("sync=%v: the quick head took %d of 200000 mutated lines", sync, took)
		if took == 0 || took == 200000 {
			t.Fatalf("sync=%v: the quick head took %d of 200000 mutated lines", sync, took)
		}
	}
}

// connHex8 agrees with strconv on every byte at every place.
func TestConnHex8(t *testing.T) {
	base := []byte("0A1b2C3D")
	base[3] = 'B'
	for pos := range 8 {
		for c := range 256 {
			b := bytes.Clone(base)
			b[pos] = byte(c)
			want, err := strconv.ParseUint(string(b), 16, 32)
			upper := bytes.Equal(b, bytes.ToUpper(b))
			got := connHex8(b)
			if err != nil || !upper {
				if got>>32 == 0 {
					t.Fatalf("%q: %#x, want a bad digit", b, got)
				}
				continue
			}
			if got != want {
				t.Fatalf("%q: %#x, want %#x", b, got, want)
			}
		}
	}
	for _, s := range []string{"00000000", "FFFFFFFF", "7F000001", "DEADBEEF", "0A130101"} {
		want, _ := strconv.ParseUint(s, 16, 32)
		if got := connHex8([]byte(s)); got != want {
			t.Fatalf("%s: %#x, want %#x", s, got, want)
		}
	}
	if got := connHex4([]byte("1F90")); got != 0x1f90 {
		t.Fatalf("1F90: %#x", got)
	}
}

func FuzzConnQuickHead(f *testing.F) {
	f.Add(true, []byte("TCP 0A000001 0400 0A130001 0050 0A130101 1F90 ESTABLISHED LOCAL      899"))
	f.Add(false, []byte("UDP 0A000001 0400 0A130001 0050 0A130101 1F90 UDP             299"))
	f.Add(false, []byte("TCP 0A000001 0000 0A130001 0050 0A130101 1F90 NONE            299 sip 1234@x"))
	f.Fuzz(func(t *testing.T, sync bool, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Skip()
		}
		quickSame(t, sync, line)
	})
}
