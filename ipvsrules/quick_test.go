package ipvsrules

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkQuick holds the quick parse to parseLine on line: if quick takes
// it, parseLine must take it too and make the same command, with and
// without the extensions. It reports whether quick took the line.
func checkQuick(t *testing.T, line string) bool {
	t.Helper()
	var quick Command
	if !(&Parser{}).quick(line, &quick) {
		if quick != (Command{}) {
			t.Fatalf("quick declined %q but wrote %+v", line, quick)
		}
		return false
	}
	ls := lines{line: line}
	ls.words()
	for _, p := range []*Parser{{}, {Extensions: true}} {
		var full Command
		if err := p.parseLine(ls.args, &full); err != nil {
			t.Fatalf("quick took %q, parseLine (Extensions %v) fails: %v", line, p.Extensions, err)
		}
		if diff := cmp.Diff(full, quick, cmpAddr); diff != "" {
			t.Fatalf("%q (Extensions %v): -parseLine +quick:\n%s", line, p.Extensions, diff)
		}
	}
	return true
}

// The lines Format writes for plain IPv4 services and servers are the
// quick parse's; lines near them, good or bad, are parseLine's.
func TestQuick(t *testing.T) {
	vs, text := benchTable()
	for l := range strings.SplitSeq(strings.TrimSuffix(string(text), "\n"), "\n") {
		if !checkQuick(t, l) {
			t.Fatalf("quick declined Format's line %q", l)
		}
	}
	vs[0].Destinations[0].ForwardMethod = 0 // DR
	for l := range strings.SplitSeq(strings.TrimSuffix(string(Format(vs[:1], FormatOptions{})), "\n"), "\n") {
		if !checkQuick(t, l) {
			t.Fatalf("quick declined Format's line %q", l)
		}
	}
	for _, l := range []string{
		"-E -u 1.2.3.4:53 -s rr",
		"-D -t 255.255.255.255:65535",
		"-e -u 0.0.0.0:1 -r 9.9.9.9:0 -g -w 0",
		"-a -t 10.0.0.1:80 -r 10.0.1.1:99 -i -w 2147483647",
		"-d -t 10.0.0.1:80 -r 10.0.1.1:8080",
		"-A -t 10.0.0.1:080 -s abcdefghijklmno",
	} {
		if !checkQuick(t, l) {
			t.Errorf("quick declined %q", l)
		}
	}
	for _, l := range []string{
		"-A -t 10.0.0.1:0 -s rr",                  // port 0: persistence
		"-A -t 10.0.0.1:80 -s abcdefghijklmnop",   // truncated name
		"-A -t 10.0.0.1:80 -s RR",                 // upper case
		"-A -t 10.0.0.1:80 -s rr ",                // trailing blank
		"-A -t 10.0.0.1:80  -s rr",                // two spaces
		"-A -t 10.0.0.1:80 -s rr -p 60",           // more options
		"-A -t 010.0.0.1:80 -s rr",                // octal
		"-A -t 10.0.1:80 -s rr",                   // three parts
		"-A -t 256.0.0.1:80 -s rr",                // out of range
		"-A -t 10.0.0.1 -s rr",                    // no port
		"-A -t 10.0.0.1:65536 -s rr",              // port out of range
		"-A -t 10.0.0.1:http -s rr",               // port name
		"-A -t [::1]:80 -s rr",                    // IPv6
		"-A --tcp-service 10.0.0.1:80 -s rr",      // long option
		"-A -t 10.0.0.1:80 -s\trr",                // tab
		"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m",   // no weight
		"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -w 1", // no method
		"-a -t 10.0.0.1:80 -r 10.0.1.1 -m -w 1",   // no server port
		"-a -t 10.0.0.1:80 -r 10.0.1.1:1 -m -w 1 -x 5",
		"-a -t 10.0.0.1:80 -r 10.0.1.1:1 -m -w 99999999999",
		"-a -t 10.0.0.1:80 -r 10.0.1.1:1 -m -w -1",
		"-a -t 10.0.0.1:80 -r 10.0.1.1:1 -i -w 1 --tun-type gue",
		"-d -t 10.0.0.1:80 -r 10.0.1.1:1 -m",
		"-D -t 10.0.0.1:80 -s rr",
		"-L -t 10.0.0.1:80",
		"-at 10.0.0.1:80 -r 10.0.1.1:1 -m -w 1",
	} {
		if checkQuick(t, l) {
			t.Errorf("quick took %q", l)
		}
	}
}

// TestQuickRandom mutates the quick parse's lines at random (bytes
// replaced, inserted, deleted; words swapped) and holds it to parseLine
// on each.
func TestQuickRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 11))
	base := []string{
		"-A -t 10.1.0.1:80 -s wlc",
		"-E -u 10.1.0.1:53 -s rr",
		"-D -t 10.1.0.1:80",
		"-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 1",
		"-e -u 10.1.0.1:53 -r 10.2.0.1:53 -g -w 100",
		"-a -t 10.1.0.1:80 -r 10.2.0.1:80 -i -w 0",
		"-d -t 10.1.0.1:80 -r 10.2.0.1:8080",
	}
	const alphabet = "-.:0123456789 \tAEDaedtursmgiwpx[]f0#"
	n, took := 200000, 0
	if testing.Short() {
		n = 20000
	}
	for range n {
		b := []byte(base[rnd.IntN(len(base))])
		for range 1 + rnd.IntN(3) {
			i := rnd.IntN(len(b) + 1)
			c := alphabet[rnd.IntN(len(alphabet))]
			switch rnd.IntN(4) {
			case 0:
				if i < len(b) {
					b[i] = c
				}
			case 1:
				b = append(b[:i], append([]byte{c}, b[i:]...)...)
			case 2:
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			case 3:
				w := strings.Fields(string(b))
				if len(w) > 2 {
					j, k := rnd.IntN(len(w)), rnd.IntN(len(w))
					w[j], w[k] = w[k], w[j]
					b = []byte(strings.Join(w, " "))
				}
			}
		}
		if checkQuick(t, string(b)) {
			took++
		}
	}
	// The mutations must leave some lines for quick, or this tests
	// nothing of it.
	if took < n/20 {
		t.Fatalf("quick took %d of %d mutated lines", took, n)
	}
	t.Logf("quick took %d of %d mutated lines", took, n)
}

// FuzzQuick holds the quick parse to parseLine on any line.
func FuzzQuick(f *testing.F) {
	f.Add("-A -t 10.1.0.1:80 -s wlc")
	f.Add("-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 1")
	f.Add("-d -u 10.1.0.1:53 -r 10.2.0.1:53")
	f.Add("-D -t 10.1.0.1:80")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.IndexByte(line, '\n') >= 0 {
			return
		}
		checkQuick(t, line)
	})
}
