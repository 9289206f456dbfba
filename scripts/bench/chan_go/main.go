// chan_go - the reference for scripts/bench/queue_bench.c: the same
// benchmark on Go's buffered channel.
//
// P producer goroutines send `items` elements in total into a
// make(chan [elem]byte, cap); C consumer goroutines range over it until it
// is closed after every producer is done. The clock starts when all of them
// are released together and stops when the last consumer has drained the
// channel. Elements carry their number in their first 8 bytes and the sum
// and count are checked. Output lines match queue_bench's:
//
//	QUEUE impl=go case=PxC items=N cap=N elem=N secs=S items_per_s=X ns_per_op=Y
//
// Build (no module needed, standard library only):
//
//	go build -o build/bench/chan_go scripts/bench/chan_go/main.go
//
// The element size is fixed at compile time in Go (an array type), so the
// sizes queue_bench may use are listed in run(); 184 is shopd's
// sizeof(struct shop_item).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type caseFlags []string

func (c *caseFlags) String() string     { return strings.Join(*c, ",") }
func (c *caseFlags) Set(v string) error { *c = append(*c, v); return nil }

// bench runs one case with elements of type E (a byte array).
func bench[E any](producers, consumers int, items uint64, capacity int,
	put func(*E, uint64), get func(*E) uint64) (time.Duration, bool) {
	ch := make(chan E, capacity)
	var ready, start sync.WaitGroup
	var prodDone, consDone sync.WaitGroup
	start.Add(1)
	sums := make([]uint64, consumers)
	counts := make([]uint64, consumers)
	per := items / uint64(producers)
	next := uint64(1)
	for p := 0; p < producers; p++ {
		first, count := next, per
		if p == producers-1 {
			count = items - (next - 1)
		}
		next += count
		ready.Add(1)
		prodDone.Add(1)
		go func() {
			defer prodDone.Done()
			var e E
			ready.Done()
			start.Wait()
			for i := uint64(0); i < count; i++ {
				put(&e, first+i)
				ch <- e
			}
		}()
	}
	for c := 0; c < consumers; c++ {
		c := c
		ready.Add(1)
		consDone.Add(1)
		go func() {
			defer consDone.Done()
			ready.Done()
			start.Wait()
			var sum, n uint64
			for e := range ch {
				sum += get(&e)
				n++
			}
			sums[c], counts[c] = sum, n
		}()
	}
	ready.Wait()
	t0 := time.Now()
	start.Done()
	prodDone.Wait()
	close(ch)
	consDone.Wait()
	elapsed := time.Since(t0)

	var sum, n uint64
	for c := 0; c < consumers; c++ {
		sum += sums[c]
		n += counts[c]
	}
	var want uint64
	if items%2 == 0 {
		want = (items / 2) * (items + 1)
	} else {
		want = items * ((items + 1) / 2)
	}
	return elapsed, n == items && sum == want
}

func run(elem, producers, consumers int, items uint64, capacity int) (time.Duration, bool) {
	switch elem {
	case 8:
		return bench(producers, consumers, items, capacity,
			func(e *[8]byte, v uint64) { binary.LittleEndian.PutUint64(e[:], v) },
			func(e *[8]byte) uint64 { return binary.LittleEndian.Uint64(e[:]) })
	case 64:
		return bench(producers, consumers, items, capacity,
			func(e *[64]byte, v uint64) { binary.LittleEndian.PutUint64(e[:], v) },
			func(e *[64]byte) uint64 { return binary.LittleEndian.Uint64(e[:]) })
	case 184:
		return bench(producers, consumers, items, capacity,
			func(e *[184]byte, v uint64) { binary.LittleEndian.PutUint64(e[:], v) },
			func(e *[184]byte) uint64 { return binary.LittleEndian.Uint64(e[:]) })
	case 256:
		return bench(producers, consumers, items, capacity,
			func(e *[256]byte, v uint64) { binary.LittleEndian.PutUint64(e[:], v) },
			func(e *[256]byte) uint64 { return binary.LittleEndian.Uint64(e[:]) })
	}
	fmt.Fprintf(os.Stderr, "chan_go: element size %d not built in (8, 64, 184, 256)\n", elem)
	os.Exit(2)
	return 0, false
}

func parseCase(s string) (int, int, error) {
	parts := strings.Split(s, "x")
	if len(parts) != 2 {
		return 0, 0, fmt.Errorf("case %q: want PxC", s)
	}
	p, err1 := strconv.Atoi(parts[0])
	c, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || p < 1 || c < 1 {
		return 0, 0, fmt.Errorf("case %q: want PxC", s)
	}
	return p, c, nil
}

func main() {
	var cases caseFlags
	flag.Var(&cases, "case", "PxC producers x consumers (repeatable; default 1x1 4x4 8x2)")
	items := flag.Uint64("items", 2000000, "elements per run")
	capacity := flag.Int("cap", 1024, "channel capacity")
	elem := flag.Int("elem", 184, "element size in bytes (8, 64, 184 or 256)")
	rounds := flag.Int("rounds", 1, "runs of every case")
	flag.Parse()
	if len(cases) == 0 {
		cases = caseFlags{"1x1", "4x4", "8x2"}
	}
	for r := 0; r < *rounds; r++ {
		for _, cs := range cases {
			p, c, err := parseCase(cs)
			if err != nil {
				fmt.Fprintln(os.Stderr, "chan_go:", err)
				os.Exit(2)
			}
			d, ok := run(*elem, p, c, *items, *capacity)
			if !ok {
				fmt.Fprintf(os.Stderr, "chan_go: %s: lost or duplicated elements\n", cs)
				os.Exit(1)
			}
			secs := d.Seconds()
			fmt.Printf("QUEUE impl=go case=%dx%d items=%d cap=%d elem=%d secs=%.4f items_per_s=%.0f ns_per_op=%.1f\n",
				p, c, *items, *capacity, *elem, secs,
				float64(*items)/secs, secs*1e9/float64(*items))
		}
	}
}
