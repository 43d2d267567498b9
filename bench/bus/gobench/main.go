// gobench - the bus benchmark driven by nats.go, the official NATS Go client (Debian
// golang-github-nats-io-go-nats-dev, built offline in GOPATH mode, as
// tests/conformance/go is):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o build/natsgo_bench \
//	    bench/bus/gobench/main.go
//
// One program, the same client code and settings for every server given, servers
// interleaved (each repetition runs every figure on every server in turn, the order
// of the servers alternating from one repetition to the next, so a noisy neighbour
// hurts both alike).
//
// Figures, per server (msgs/s are what the subscribers receive, end to end: from
// the first Publish to the moment the last expected message reaches the
// subscribers' handlers; each publisher ends with Flush(), a PING/PONG barrier, and
// then each subscriber connection flushes too; messages lost do not count):
//
//	ps16    one publisher connection to one subscriber connection, 16 B messages
//	ps1k    the same with 1 KiB messages
//	fan4    one publisher, four subscriber connections on the same subject, 16 B:
//	        deliveries per second (4 per message published)
//	mp4     four publisher connections (each its own goroutine) to one subscriber, 16 B
//	req     request/reply round trips with nc.Request(), one at a time, against a
//	        responder on a second connection: p50 and p99 in microseconds
//
// With NAME=URL,PID the server's CPU time (utime+stime from /proc/PID/stat, all its
// threads) is read before and after every run: cpu_ns_per_msg = CPU time / messages
// delivered (for req: per round trip). After the last repetition VmRSS and VmHWM of
// each server are printed (KiB). client_cpu_ns_per_msg is this program's own CPU
// time (all its goroutines, publishers and subscribers) per message delivered.
//
// stdout: one line per figure and server with the median ("ps16_msgs_per_s
// edgepoint 1234567"), then for last server / first server: "FIG ratio R", the
// median of the ratios within each repetition (the two measured back to back, so
// that a load change between repetitions hurts both), "FIG ratio_range MIN-MAX" of
// those, and "FIG ratio_of_medians R"; stderr: every run.
//
// Usage: natsgo_bench [-r reps] [-n msgs16] [-k msgs1k] [-f msgsfan] [-m msgsmp]
//
//	[-q requests] [-t figures] NAME=URL[,PID]...
//
// -t picks figures by name, comma-separated (default ps16,ps1k,fan4,mp4,req).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

type server struct {
	name, url string
	pid       int
	v         map[string][]float64
}

var clkTck = 100.0 // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on

// cpuTicks: utime + stime of the whole process, in clock ticks.
func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64) // field 14 of the whole line
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func status(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			f := strings.Fields(l[len(key)+1:])
			v, _ := strconv.ParseInt(f[0], 10, 64)
			return v
		}
	}
	return -1
}

// clientCPU: this program's own CPU time so far (user + system), in nanoseconds.
func clientCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "natsgo_bench: "+format+"\n", a...)
	os.Exit(2)
}

func connect(url, name string) *nats.Conn {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(0),
		nats.NoCallbacksAfterClientClose())
	if err != nil {
		die("connect %s: %v", url, err)
	}
	return nc
}

// counter is a subscriber that counts what it receives and notes when it got all.
type counter struct {
	n      int64
	want   int64
	doneAt time.Time
	last   time.Time
	done   chan struct{}
}

// pubsub runs npub publishers (n messages of size bytes in all) to nsub
// subscribers on one subject; returns deliveries per second and deliveries.
func pubsub(url string, npub, nsub, n, size int) (float64, int64) {
	subj := fmt.Sprintf("bench.%d", time.Now().UnixNano())
	subs := make([]*nats.Conn, nsub)
	cs := make([]*counter, nsub)
	for i := range subs {
		subs[i] = connect(url, "bench-sub")
		c := &counter{want: int64(n), done: make(chan struct{})}
		cs[i] = c
		s, err := subs[i].Subscribe(subj, func(m *nats.Msg) {
			c.n++
			if c.n&1023 == 0 {
				c.last = time.Now()
			}
			if c.n == c.want {
				c.doneAt = time.Now()
				close(c.done)
			}
		})
		if err != nil {
			die("subscribe: %v", err)
		}
		// Room for the whole run: the client must not be the one dropping.
		s.SetPendingLimits(-1, -1)
		if err := subs[i].Flush(); err != nil {
			die("flush: %v", err)
		}
	}
	pubs := make([]*nats.Conn, npub)
	for i := range pubs {
		pubs[i] = connect(url, "bench-pub")
	}
	payload := bytes.Repeat([]byte("x"), size)
	var wg sync.WaitGroup
	var perr atomic.Value
	start := time.Now()
	for i := range pubs {
		cnt := n / npub
		if i < n%npub {
			cnt++
		}
		wg.Add(1)
		go func(nc *nats.Conn, cnt int) {
			defer wg.Done()
			for k := 0; k < cnt; k++ {
				if err := nc.Publish(subj, payload); err != nil {
					perr.Store(err)
					return
				}
			}
			if err := nc.FlushTimeout(60 * time.Second); err != nil {
				perr.Store(err)
			}
		}(pubs[i], cnt)
	}
	wg.Wait()
	if e := perr.Load(); e != nil {
		die("publish: %v", e)
	}
	for _, s := range subs {
		s.FlushTimeout(60 * time.Second)
	}
	var total int64
	var end time.Time
	for _, c := range cs {
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
		}
	}
	for _, p := range pubs {
		p.Close()
	}
	for _, s := range subs {
		s.Close() // no callbacks after this: the counters are ours now
	}
	for _, c := range cs {
		total += c.n
		t := c.doneAt
		if c.n != c.want {
			t = c.last
		}
		if t.After(end) {
			end = t
		}
	}
	if total < int64(n)*int64(nsub) {
		fmt.Fprintf(os.Stderr, "natsgo_bench: %d of %d messages delivered\n", total,
			int64(n)*int64(nsub))
	}
	d := end.Sub(start).Seconds()
	if d <= 0 {
		return 0, total
	}
	return float64(total) / d, total
}

// reqrep returns p50 and p99 of q round trips in microseconds (after q/20 not counted).
func reqrep(url string, q int) (float64, float64) {
	rc := connect(url, "bench-responder")
	defer rc.Close()
	subj := fmt.Sprintf("bench.req.%d", time.Now().UnixNano())
	if _, err := rc.Subscribe(subj, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		die("subscribe: %v", err)
	}
	rc.Flush()
	nc := connect(url, "bench-requester")
	defer nc.Close()
	payload := bytes.Repeat([]byte("r"), 16)
	warm := q / 20
	lat := make([]float64, 0, q)
	for i := 0; i < q+warm; i++ {
		t := time.Now()
		if _, err := nc.Request(subj, payload, 5*time.Second); err != nil {
			die("request: %v", err)
		}
		if i >= warm {
			lat = append(lat, float64(time.Since(t).Nanoseconds())/1000)
		}
	}
	sort.Float64s(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	w := append([]float64(nil), v...)
	sort.Float64s(w)
	if len(w)%2 == 1 {
		return w[len(w)/2]
	}
	return (w[len(w)/2-1] + w[len(w)/2]) / 2
}

func main() {
	reps := flag.Int("r", 5, "repetitions")
	n16 := flag.Int("n", 1000000, "16 B messages, 1:1 and 4:1")
	n1k := flag.Int("k", 200000, "1 KiB messages")
	nfan := flag.Int("f", 500000, "16 B messages published in the fan-out")
	nmp := flag.Int("m", 1000000, "16 B messages of the 4 publishers together")
	q := flag.Int("q", 10000, "request/reply round trips")
	figs := flag.String("t", "ps16,ps1k,fan4,mp4,req", "figures")
	flag.Parse()
	if flag.NArg() < 1 {
		die("usage: natsgo_bench [options] NAME=URL[,PID]...")
	}
	var ss []*server
	for _, a := range flag.Args() {
		eq := strings.IndexByte(a, '=')
		if eq < 0 {
			die("%s: expected NAME=URL[,PID]", a)
		}
		s := &server{name: a[:eq], url: a[eq+1:], v: map[string][]float64{}}
		if c := strings.IndexByte(s.url, ','); c >= 0 {
			s.pid, _ = strconv.Atoi(s.url[c+1:])
			s.url = s.url[:c]
		}
		ss = append(ss, s)
	}
	want := map[string]bool{}
	for _, f := range strings.Split(*figs, ",") {
		want[f] = true
	}
	type tp struct {
		name                string
		npub, nsub, n, size int
	}
	tps := []tp{
		{"ps16", 1, 1, *n16, 16},
		{"ps1k", 1, 1, *n1k, 1024},
		{"fan4", 1, 4, *nfan, 16},
		{"mp4", 4, 1, *nmp, 16},
	}
	var order []string
	for r := 0; r < *reps; r++ {
		for _, f := range tps {
			if !want[f.name] {
				continue
			}
			for i := range ss {
				s := ss[i]
				if r%2 == 1 {
					s = ss[len(ss)-1-i]
				}
				t0, c0 := cpuTicks(s.pid), clientCPU()
				rate, got := pubsub(s.url, f.npub, f.nsub, f.n, f.size)
				t1, c1 := cpuTicks(s.pid), clientCPU()
				cpu := float64(t1-t0) / clkTck * 1e9 / float64(got)
				ccpu := float64(c1-c0) / float64(got)
				k := f.name + "_msgs_per_s"
				s.v[k] = append(s.v[k], rate)
				s.v[f.name+"_cpu_ns_per_msg"] = append(s.v[f.name+"_cpu_ns_per_msg"], cpu)
				s.v[f.name+"_client_cpu_ns_per_msg"] = append(s.v[f.name+"_client_cpu_ns_per_msg"], ccpu)
				fmt.Fprintf(os.Stderr, "rep %d %s %s %.0f msgs/s, server CPU %d ticks, %.0f ns/msg, client CPU %.0f ns/msg\n",
					r, f.name, s.name, rate, t1-t0, cpu, ccpu)
			}
			if r == 0 {
				order = append(order, f.name+"_msgs_per_s", f.name+"_cpu_ns_per_msg",
					f.name+"_client_cpu_ns_per_msg")
			}
		}
		if want["req"] {
			for i := range ss {
				s := ss[i]
				if r%2 == 1 {
					s = ss[len(ss)-1-i]
				}
				t0 := cpuTicks(s.pid)
				p50, p99 := reqrep(s.url, *q)
				t1 := cpuTicks(s.pid)
				cpu := float64(t1-t0) / clkTck * 1e9 / float64(*q+*q/20)
				s.v["req_p50_us"] = append(s.v["req_p50_us"], p50)
				s.v["req_p99_us"] = append(s.v["req_p99_us"], p99)
				s.v["req_cpu_ns_per_msg"] = append(s.v["req_cpu_ns_per_msg"], cpu)
				fmt.Fprintf(os.Stderr, "rep %d req %s p50 %.1f us p99 %.1f us, server CPU %d ticks\n",
					r, s.name, p50, p99, t1-t0)
			}
			if r == 0 {
				order = append(order, "req_p50_us", "req_p99_us", "req_cpu_ns_per_msg")
			}
		}
	}
	for _, k := range order {
		for _, s := range ss {
			m := median(s.v[k])
			if strings.HasSuffix(k, "_us") {
				fmt.Printf("%s %s %.1f\n", k, s.name, m)
			} else {
				fmt.Printf("%s %s %.0f\n", k, s.name, m)
			}
		}
		if len(ss) > 1 {
			// The paired ratio: last / first within each repetition (run back to
			// back, so both saw the same load), then the median of those.
			x, y := ss[0].v[k], ss[len(ss)-1].v[k]
			var pr []float64
			for i := range x {
				if i < len(y) && x[i] > 0 {
					pr = append(pr, y[i]/x[i])
				}
			}
			if len(pr) > 0 {
				sort.Float64s(pr)
				fmt.Printf("%s ratio %.2f\n", k, median(pr))
				fmt.Printf("%s ratio_range %.2f-%.2f\n", k, pr[0], pr[len(pr)-1])
			}
			if a, b := median(x), median(y); a > 0 {
				fmt.Printf("%s ratio_of_medians %.2f\n", k, b/a)
			}
		}
	}
	for _, s := range ss {
		if s.pid > 0 {
			fmt.Printf("vmrss_kib %s %d\n", s.name, status(s.pid, "VmRSS"))
			fmt.Printf("vmhwm_kib %s %d\n", s.name, status(s.pid, "VmHWM"))
		}
	}
}
