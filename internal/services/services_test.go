package services

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ipvs-go/ipvs"
)

func TestEach(t *testing.T) {
	const file = `# services(5)
http		80/tcp		www		# WorldWideWeb HTTP
http		80/udp
domain		53/tcp
bad		port/tcp
ddp		2/ddp
short
sctpish		9999/sctp	alias1 alias2
toolarge	70000/tcp
`
	type entry struct {
		Names []string
		Port  uint16
		Proto ipvs.Protocol
	}
	var got []entry
	err := Each(strings.NewReader(file), func(names []string, port uint16, proto ipvs.Protocol) {
		got = append(got, entry{append([]string(nil), names...), port, proto})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{[]string{"http", "www"}, 80, ipvs.TCP},
		{[]string{"http"}, 80, ipvs.UDP},
		{[]string{"domain"}, 53, ipvs.TCP},
		{[]string{"sctpish", "alias1", "alias2"}, 9999, ipvs.SCTP},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
}
