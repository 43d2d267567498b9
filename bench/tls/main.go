// tlsbench - the PING latency of an existing bus client while new TLS clients
// connect (bench/tls/run.sh runs it).
//
// One client connects first (INFO in plaintext, the TLS handshake, CONNECT) and then
// sends PING every -ping interval and times each PONG. Meanwhile new clients arrive
// at -rate per second, each on its own goroutine (at most -conc at a time; one that
// finds no room is counted as skipped): TCP connect, read INFO, TLS handshake,
// CONNECT + PING, wait for PONG, close. The PING round trips of the first client
// are the bus loop's latency: a handshake computed on the loop thread delays every
// other client's traffic by its cost.
//
// It prints one line per phase: "idle" (no new clients, -idle seconds) and "load"
// (-dur seconds), with the PING round trip p50/p99/max in ms and, under load, the
// TLS clients completed per second and their connect-to-PONG time.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	addr    = flag.String("addr", "127.0.0.1:4222", "the bus address")
	caFile  = flag.String("ca", "", "PEM CA of the server certificate (empty: no verification)")
	rate    = flag.Int("rate", 200, "new TLS clients per second")
	conc    = flag.Int("conc", 50, "new TLS clients in flight at most")
	burst   = flag.Int("burst", 0, "instead of -rate: this many new clients at once, once")
	dur     = flag.Float64("dur", 10, "seconds of load")
	idle    = flag.Float64("idle", 2, "seconds of idle measurement first")
	pingInt = flag.Duration("ping", 2*time.Millisecond, "interval between PINGs")
)

func tlsConfig() *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1",
		// A new session each time, as a new client has: no resumption.
		SessionTicketsDisabled: true, ClientSessionCache: nil}
	if *caFile == "" {
		cfg.InsecureSkipVerify = true
		return cfg
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg.RootCAs = pool
	return cfg
}

// dial connects one client up to its first PONG.
func dial(cfg *tls.Config) (*tls.Conn, *bufio.Reader, error) {
	raw, err := net.DialTimeout("tcp", *addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	// INFO arrives in plaintext; read it byte by byte so nothing of the handshake
	// is consumed here.
	var info []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(info), "\r\n") {
		if _, err := raw.Read(one); err != nil {
			raw.Close()
			return nil, nil, fmt.Errorf("reading INFO: %w", err)
		}
		info = append(info, one[0])
	}
	c := tls.Client(raw, cfg)
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, nil, err
	}
	if _, err := c.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":true}\r\nPING\r\n")); err != nil {
		c.Close()
		return nil, nil, err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if line == "PONG\r\n" {
			break
		}
		if strings.HasPrefix(line, "-ERR") {
			c.Close()
			return nil, nil, errors.New(strings.TrimSpace(line))
		}
	}
	raw.SetDeadline(time.Time{})
	return c, r, nil
}

type pinger struct {
	mu   sync.Mutex
	rtts []time.Duration
}

func (p *pinger) run(c *tls.Conn, r *bufio.Reader, stop <-chan struct{}, done chan<- error) {
	for {
		select {
		case <-stop:
			done <- nil
			return
		default:
		}
		t0 := time.Now()
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			done <- err
			return
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- err
				return
			}
			if line == "PONG\r\n" {
				break
			}
			if line == "PING\r\n" {
				c.Write([]byte("PONG\r\n"))
			}
		}
		d := time.Since(t0)
		p.mu.Lock()
		p.rtts = append(p.rtts, d)
		p.mu.Unlock()
		time.Sleep(*pingInt)
	}
}

func (p *pinger) take() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.rtts
	p.rtts = nil
	return v
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func pct(v []time.Duration, q float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	i := int(float64(len(v)) * q)
	if i >= len(v) {
		i = len(v) - 1
	}
	return v[i]
}

func summary(v []time.Duration) string {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	if len(v) == 0 {
		return "pings 0"
	}
	return fmt.Sprintf("pings %d ping_p50_ms %.2f ping_p99_ms %.2f ping_max_ms %.2f",
		len(v), ms(pct(v, 0.50)), ms(pct(v, 0.99)), ms(v[len(v)-1]))
}

func main() {
	flag.Parse()
	cfg := tlsConfig()
	c, r, err := dial(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsbench: the first client:", err)
		os.Exit(2)
	}
	p := &pinger{}
	stop := make(chan struct{})
	pdone := make(chan error, 1)
	go p.run(c, r, stop, pdone)
	time.Sleep(time.Duration(*idle * float64(time.Second)))
	fmt.Printf("idle %s\n", summary(p.take()))

	var ok, failed, skipped int64
	var hmu sync.Mutex
	var hs []time.Duration
	var firstErr atomic.Value
	sem := make(chan struct{}, *conc)
	var wg sync.WaitGroup
	one := func() {
		defer wg.Done()
		defer func() { <-sem }()
		t0 := time.Now()
		cc, _, err := dial(cfg)
		if err != nil {
			atomic.AddInt64(&failed, 1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		d := time.Since(t0)
		cc.Close()
		atomic.AddInt64(&ok, 1)
		hmu.Lock()
		hs = append(hs, d)
		hmu.Unlock()
	}
	start := time.Now()
	if *burst > 0 {
		sem = make(chan struct{}, *burst)
		for i := 0; i < *burst; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go one()
		}
		wg.Wait()
	} else {
		end := start.Add(time.Duration(*dur * float64(time.Second)))
		interval := time.Second / time.Duration(*rate)
		next := start
		for time.Now().Before(end) {
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go one()
			default:
				skipped++
			}
			next = next.Add(interval)
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
		}
		wg.Wait()
	}
	el := time.Since(start).Seconds()
	close(stop)
	if err := <-pdone; err != nil {
		fmt.Fprintln(os.Stderr, "tlsbench: the first client:", err)
		os.Exit(2)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
	fmt.Printf("load %s tls_clients %d failed %d skipped %d per_s %.0f connect_p50_ms %.1f connect_p99_ms %.1f\n",
		summary(p.take()), ok, failed, skipped, float64(ok)/el, ms(pct(hs, 0.5)), ms(pct(hs, 0.99)))
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "tlsbench: first failure:", e)
	}
	c.Close()
}
