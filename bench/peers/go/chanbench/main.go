// chanbench measures Go buffered channels as a baseline peer for ringflow.
// It prints one JSON object per line to stdout; see ../README.md.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"
)

type result struct {
	Impl           string    `json:"impl"`
	Scenario       string    `json:"scenario"`
	Workers        int       `json:"workers"`
	Capacity       int       `json:"capacity"`
	Items          int       `json:"items,omitempty"`
	Roundtrips     int       `json:"roundtrips,omitempty"`
	NsPerItem      float64   `json:"ns_per_item,omitempty"`
	NsPerRoundtrip float64   `json:"ns_per_roundtrip,omitempty"`
	Runs           []float64 `json:"runs"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "chanbench: "+format+"\n", args...)
	os.Exit(1)
}

// spsc: one sender goroutine -> one receiver goroutine.
func spsc(capacity, n int) time.Duration {
	ch := make(chan uint64, capacity)
	var sum uint64
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			ch <- uint64(i)
		}
		close(ch)
	}()
	go func() {
		defer wg.Done()
		for v := range ch {
			sum += v
		}
	}()
	wg.Wait()
	d := time.Since(start)
	if want := uint64(n) * uint64(n-1) / 2; sum != want {
		fail("spsc: sum %d != %d", sum, want)
	}
	return d
}

// mpmc: p senders (n/p items each) -> p receivers over one channel.
func mpmc(p, capacity, n int) time.Duration {
	per := n / p
	total := per * p
	ch := make(chan uint64, capacity)
	sums := make([]uint64, p)
	var senders, receivers sync.WaitGroup
	senders.Add(p)
	receivers.Add(p)
	start := time.Now()
	for k := 0; k < p; k++ {
		go func(k int) {
			defer senders.Done()
			for i := k * per; i < (k+1)*per; i++ {
				ch <- uint64(i)
			}
		}(k)
		go func(k int) {
			defer receivers.Done()
			var s uint64
			for v := range ch {
				s += v
			}
			sums[k] = s
		}(k)
	}
	senders.Wait()
	close(ch)
	receivers.Wait()
	d := time.Since(start)
	var sum uint64
	for _, s := range sums {
		sum += s
	}
	if want := uint64(total) * uint64(total-1) / 2; sum != want {
		fail("mpmc: sum %d != %d", sum, want)
	}
	return d
}

// pingpong: a value bounces between two goroutines through two cap-1 channels.
func pingpong(rt int) time.Duration {
	ping, pong := make(chan uint64, 1), make(chan uint64, 1)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	start := time.Now()
	var v uint64
	for i := 0; i < rt; i++ {
		ping <- v
		v = <-pong
	}
	d := time.Since(start)
	close(ping)
	if v != uint64(rt) {
		fail("pingpong: got %d want %d", v, rt)
	}
	return d
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return round2((s[m-1] + s[m]) / 2)
	}
	return s[m]
}

// measure runs f once to warm up (caches, page faults, clock ramp: the first
// run of a scenario was often the slowest), then reps times, and returns ns
// per unit for each measured run. Every implementation's bench does the same.
func measure(reps, units int, f func() time.Duration) []float64 {
	runtime.GC()
	f()
	runs := make([]float64, reps)
	for i := range runs {
		runtime.GC()
		runs[i] = round2(float64(f().Nanoseconds()) / float64(units))
	}
	return runs
}

func main() {
	items := flag.Int("items", 10000000, "items per scenario")
	reps := flag.Int("reps", 3, "repetitions; the median is reported")
	flag.Parse()
	if *items < 4 || *reps < 1 {
		fail("need -items >= 4 and -reps >= 1")
	}
	n := *items
	out := json.NewEncoder(os.Stdout)
	emit := func(r result) {
		if err := out.Encode(r); err != nil {
			fail("%v", err)
		}
	}

	for _, workers := range []int{1, 2} {
		runtime.GOMAXPROCS(workers)
		for _, c := range []int{1, 64, 1024} {
			runs := measure(*reps, n, func() time.Duration { return spsc(c, n) })
			emit(result{Impl: "go", Scenario: "spsc", Workers: workers, Capacity: c,
				Items: n, NsPerItem: median(runs), Runs: runs})
		}
	}

	runtime.GOMAXPROCS(2)
	total := n / 4 * 4
	runs := measure(*reps, total, func() time.Duration { return mpmc(4, 1024, n) })
	emit(result{Impl: "go", Scenario: "mpmc", Workers: 2, Capacity: 1024,
		Items: total, NsPerItem: median(runs), Runs: runs})

	rt := n / 10
	if rt < 100000 {
		rt = 100000
	}
	for _, workers := range []int{1, 2} {
		runtime.GOMAXPROCS(workers)
		runs := measure(*reps, rt, func() time.Duration { return pingpong(rt) })
		emit(result{Impl: "go", Scenario: "pingpong", Workers: workers, Capacity: 1,
			Roundtrips: rt, NsPerRoundtrip: median(runs), Runs: runs})
	}
}
