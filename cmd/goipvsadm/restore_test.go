package main

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"github.com/ipvs-go/ipvs/ipvsrules"
)

// TestParseParallel checks that parsing a large text in pieces gives what
// one Parse gives: the commands with their line numbers, and every bad
// line's error with its own.
func TestParseParallel(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	var buf bytes.Buffer
	for i := range 3000 {
		svc := fmt.Sprintf("10.%d.%d.1:80", i/256, i%256)
		fmt.Fprintf(&buf, "-A -t %s -s rr\n# a comment\n", svc)
		for j := range 4 {
			fmt.Fprintf(&buf, "-a -t %s -r 10.200.%d.%d:8080 -m -w %d\n", svc, i%256, j+1, j)
		}
	}
	good := buf.Bytes()
	if len(good) < 256<<10 {
		t.Fatalf("the text (%d bytes) is too small to be parsed in pieces", len(good))
	}
	var p ipvsrules.Parser
	want, err := p.Parse(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseParallel(&p, good)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseParallel: %d commands, %v; want %d, nil (or they differ)", len(got), err, len(want))
	}

	bad := append(bytes.Clone(good), "-a -t 10.0.0.1:80 -r 1.2.3.4 -w x\n"...)
	bad = append([]byte("-Q\n"), bad...)
	_, werr := p.Parse(bytes.NewReader(bad))
	cmds, gerr := parseParallel(&p, bad)
	var wes, ges ipvsrules.SyntaxErrors
	if cmds != nil || !errors.As(werr, &wes) || !errors.As(gerr, &ges) || werr.Error() != gerr.Error() {
		t.Errorf("parseParallel of bad text: %d commands, %v; want none, %v", len(cmds), gerr, werr)
	}
}
