package ipvsrules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse parses rules text; what it makes of the table, formatted
// lossless and parsed again, is the same table. Format as ipvsadm does
// must not fail on it either.
func FuzzParse(f *testing.F) {
	f.Add(referenceSave)
	f.Add(string(Format(referenceTable(), FormatOptions{Lossless: true})))
	f.Add("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1:8080 -m -w 70000 -x 5 -y 9\n-E -t 10.0.0.1:80 -p -M 0.0.0.0\n")
	f.Add("-A -f 4294967295 -6 -s sh -b flag-3,sh-port -M 64 -o\n-a -f 4294967295 -6 -r 10.0.0.1 -i --tun-type gue --tun-port 1 --tun-remcsum\n")
	f.Add("-A --sctp-service [::1.2.3.4]:0 --svc-timeout 9 --pe=ipvsadm -sipvsadm\n-a --sctp-service [::1.2.3.4]:0 -r [::ffff:1.2.3.4]:7 --local-node --keep-port\n")
	f.Add("-At 10.0.0.1:80 -p=60 -M 255.0.255.0\n-at 10.0.0.1:80 -r 1.2.3.4:99 -gw0 --keep-port\n-C\n--set 1 2 3\n-Z\n")
	f.Fuzz(func(t *testing.T, text string) {
		var strict Parser
		strict.Parse(strings.NewReader(text))
		p := Parser{Extensions: true, ContinueOnError: true}
		cmds, _ := p.Parse(strings.NewReader(text))
		table, err := Desired(cmds)
		if err != nil {
			return
		}
		Format(table, FormatOptions{})
		out := Format(table, FormatOptions{Lossless: true})
		p.ContinueOnError = false
		cmds2, err := p.Parse(strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("parsing the lossless text failed: %v\n%s", err, out)
		}
		table2, err := Desired(cmds2)
		if err != nil {
			t.Fatalf("Desired of the lossless text: %v\n%s", err, out)
		}
		if diff := cmp.Diff(sortedTable(table), sortedTable(table2), cmpAddr); diff != "" {
			t.Fatalf("round trip (-parsed +formatted and parsed again):\n%s\n%s", diff, out)
		}
	})
}
