package ipvsrules

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkParse parses the rules of 2000 services of 4 destinations, the
// bench program's table (ipvsadm -R's input there).
func BenchmarkParse(b *testing.B) {
	var buf bytes.Buffer
	for i := range 2000 {
		svc := fmt.Sprintf("10.%d.%d.1:80", i/256, i%256)
		fmt.Fprintf(&buf, "-A -t %s -s rr\n", svc)
		for j := range 4 {
			fmt.Fprintf(&buf, "-a -t %s -r 10.200.%d.%d:8080 -m -w 1\n", svc, i%256, j+1)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var p Parser
		cmds, err := p.Parse(bytes.NewReader(buf.Bytes()))
		if err != nil || len(cmds) != 10000 {
			b.Fatal(len(cmds), err)
		}
	}
}
