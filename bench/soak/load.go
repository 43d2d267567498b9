// soakload - the bus side of the soak bench (bench/soak/run.sh): -clients nats.go
// connections for -dur seconds. Even-numbered clients write points: a request to
// p.<node> (one of -nodes variable nodes soak0..soakN-1) with one value point,
// acknowledged by the store after its commit. Odd-numbered clients do plain pub/sub:
// each subscribes to soak.chat.<k % 10> and publishes 100-byte messages to
// soak.chat.<(k+2) % 10> (20 subscribers each). Every client sends -rate messages a second.
//
// Prints one line at the end: writes sent/acked/failed, pub/sub messages sent and
// received, reconnects. Exits 1 when a client lost its connection or more than 1%
// of the writes failed (the daemon was not serving).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "the bus")
	clients := flag.Int("clients", 200, "connections")
	rate := flag.Float64("rate", 5, "messages per second per client")
	dur := flag.Float64("dur", 60, "seconds")
	nodes := flag.Int("nodes", 100, "variable nodes soak0.. to write")
	flag.Parse()

	var writes, acked, failed, pubs, recvd, disconnects int64
	var firstErr atomic.Value
	var ending int32 // Close() reports a disconnect too: not counted then
	deadline := time.Now().Add(time.Duration(*dur * float64(time.Second)))
	var wg sync.WaitGroup
	conns := make([]*nats.Conn, *clients)
	for k := 0; k < *clients; k++ {
		nc, err := nats.Connect(*url, nats.Name(fmt.Sprintf("soak%d", k)),
			nats.MaxReconnects(-1),
			nats.DisconnectErrHandler(func(*nats.Conn, error) {
				if atomic.LoadInt32(&ending) == 0 {
					atomic.AddInt64(&disconnects, 1)
				}
			}))
		if err != nil {
			fmt.Fprintf(os.Stderr, "soakload: client %d: %v\n", k, err)
			os.Exit(2)
		}
		conns[k] = nc
		if k%2 == 1 {
			if _, err := nc.Subscribe(fmt.Sprintf("soak.chat.%d", k%10), func(*nats.Msg) {
				atomic.AddInt64(&recvd, 1)
			}); err != nil {
				fmt.Fprintf(os.Stderr, "soakload: subscribe: %v\n", err)
				os.Exit(2)
			}
		}
	}
	interval := time.Duration(float64(time.Second) / *rate)
	payload := make([]byte, 100)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	for k := 0; k < *clients; k++ {
		wg.Add(1)
		go func(k int, nc *nats.Conn) {
			defer wg.Done()
			// Spread the clients' ticks over the interval.
			time.Sleep(time.Duration(k) * interval / time.Duration(*clients))
			tick := time.NewTicker(interval)
			defer tick.Stop()
			n := 0
			for time.Now().Before(deadline) {
				<-tick.C
				n++
				if k%2 == 1 {
					nc.Publish(fmt.Sprintf("soak.chat.%d", (k+2)%10), payload)
					atomic.AddInt64(&pubs, 1)
					continue
				}
				node := fmt.Sprintf("soak%d", (k/2+n)%*nodes)
				body, _ := json.Marshal([]map[string]interface{}{
					{"type": "value", "value": float64(n%1000) + float64(k)/1000,
						"time": time.Now().UTC().Format(time.RFC3339Nano)}})
				atomic.AddInt64(&writes, 1)
				msg, err := nc.Request("p."+node, body, 5*time.Second)
				if err != nil {
					atomic.AddInt64(&failed, 1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				var r map[string]interface{}
				if json.Unmarshal(msg.Data, &r) != nil || r["error"] != nil {
					atomic.AddInt64(&failed, 1)
					firstErr.CompareAndSwap(nil, string(msg.Data))
					continue
				}
				atomic.AddInt64(&acked, 1)
			}
		}(k, conns[k])
	}
	wg.Wait()
	atomic.StoreInt32(&ending, 1)
	for _, nc := range conns {
		nc.Flush()
		nc.Close()
	}
	fmt.Printf("load writes %d acked %d failed %d pubs %d received %d disconnects %d\n",
		writes, acked, failed, pubs, recvd, disconnects)
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "soakload: first failure:", e)
	}
	if disconnects > 0 || failed*100 > writes {
		os.Exit(1)
	}
}
