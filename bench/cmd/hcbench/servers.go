package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// serve is the server child: it listens on 127.0.0.1 ports base to
// base+n-1 and answers every connection (TCP: accept and close; HTTP: read
// the request head, answer 200 "ok" after delay, close). It counts
// connections, and per port the gaps between two connections longer than
// gap (a missed interval seen from the server, the same measure for every
// checker). Commands on stdin, one per line, each answered with one line on
// stdout:
//
//	start: open the window (reset the counters)
//	stat:  "conns missed maxgap_ms stale cpu_ns" since start, where stale is
//	       the ports without a connection for longer than gap, and cpu_ns the
//	       servers' own CPU time
func serve(kind string, base, n int, gap, delay time.Duration) error {
	raiseNofile()
	var conns atomic.Int64
	var missed atomic.Int64
	var maxGap atomic.Int64
	var windowStart atomic.Int64
	last := make([]atomic.Int64, n)
	var cpuStart time.Duration
	// Plain TCP listeners, as the backends a checker checks: Go listens
	// with MPTCP by default where the kernel has it, and an MPTCP
	// listener loses the connections reset before they are accepted
	// (the Monitor's TCP checks reset theirs as soon as they open), which
	// the servers would count as missed intervals.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	for i := range n {
		ln, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf("127.0.0.1:%d", base+i))
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					time.Sleep(time.Millisecond) // EMFILE and the like
					continue
				}
				now := time.Now().UnixNano()
				conns.Add(1)
				if ws := windowStart.Load(); ws != 0 {
					prev := last[i].Load()
					if prev < ws {
						prev = ws
					}
					if d := now - prev; d > int64(gap) {
						missed.Add(1)
					}
					if d := now - prev; d > maxGap.Load() {
						maxGap.Store(d)
					}
				}
				last[i].Store(now)
				if kind == "http" {
					go answerHTTP(c, delay)
				} else {
					c.Close()
				}
			}
		}()
	}
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch strings.TrimSpace(sc.Text()) {
		case "start":
			conns.Store(0)
			missed.Store(0)
			maxGap.Store(0)
			windowStart.Store(time.Now().UnixNano())
			cpuStart = cpuTime()
			fmt.Println("ok")
		case "stat":
			now := time.Now().UnixNano()
			ws := windowStart.Load()
			stale := 0
			for i := range last {
				l := last[i].Load()
				if l < ws {
					l = ws
				}
				if now-l > int64(gap) {
					stale++
				}
			}
			fmt.Printf("%d %d %.0f %d %d\n", conns.Load(), missed.Load(), float64(maxGap.Load())/1e6, stale, int64(cpuTime()-cpuStart))
		}
	}
	return nil
}

// answerJitter is -answer-jitter.
var answerJitter time.Duration

const httpReply = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

func answerHTTP(c net.Conn, delay time.Duration) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(c, 1024)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if len(line) <= 2 { // the empty line that ends the head
			break
		}
	}
	if answerJitter > 0 {
		delay += rand.N(answerJitter)
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	c.Write([]byte(httpReply))
}
