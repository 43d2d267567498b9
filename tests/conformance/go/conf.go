// conf.go - the bus conformance cases driven by nats.go, the official NATS Go client
// (Debian golang-github-nats-io-go-nats-dev, built offline in GOPATH mode:
// GO111MODULE=off GOPATH=/usr/share/gocode go build). A client nobody here wrote.
//
//	natsgo_conf URL CASE [--token T] [--user U --password P] [--ca FILE]
//	            [--cert FILE --key FILE] [--max-payload N]
//
// Each case prints one "ok - ..." line per thing it checked and exits 0 when all
// passed, or prints "not ok - ..." and exits 1 at the first failure (2 for usage).
// The same cases, with the same names and checks, exist for nats.c
// (../natsc_conf.c) and nats.js (../js/conf.mjs).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

var (
	url, token, user, password, ca string
	cert, key                      string // client certificate and key (mTLS)
	maxPayload                     int64
	prefix                         string
)

func ok(format string, a ...interface{}) {
	fmt.Printf("ok - "+format+"\n", a...)
}

func fail(format string, a ...interface{}) {
	fmt.Printf("not ok - "+format+"\n", a...)
	os.Exit(1)
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func subj(tail string) string { return prefix + "." + tail }

// conn connects with the credentials and CA of the command line; no reconnects.
func conn() (*nats.Conn, error) {
	opts := []nats.Option{nats.Name("natsgo_conf"), nats.NoReconnect(),
		nats.Timeout(5 * time.Second)}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca), nats.Secure())
	}
	if cert != "" {
		opts = append(opts, nats.ClientCert(cert, key))
	}
	return nats.Connect(url, opts...)
}

func mustConn() *nats.Conn {
	nc, err := conn()
	must(err, "connect")
	return nc
}

func next(sub *nats.Subscription, what string) *nats.Msg {
	m, err := sub.NextMsg(5 * time.Second)
	must(err, what)
	return m
}

// empty reports whether nothing more is queued on sub (after the caller's flushes).
func empty(sub *nats.Subscription) bool {
	_, err := sub.NextMsg(100 * time.Millisecond)
	return errors.Is(err, nats.ErrTimeout)
}

func roundtrip(nc *nats.Conn, what string) {
	s := subj("rt")
	sub, err := nc.SubscribeSync(s)
	must(err, "subscribe")
	must(nc.Publish(s, []byte("round trip")), "publish")
	if m := next(sub, "round trip message"); string(m.Data) != "round trip" {
		fail("%s: got %q", what, m.Data)
	}
	ok("%s: a message made the round trip", what)
}

func caseConnect() {
	nc := mustConn()
	defer nc.Close()
	ok("connected to %s", nc.ConnectedUrl())
	if nc.ConnectedServerId() == "" {
		fail("INFO has no server_id")
	}
	ok("INFO server_id %q", nc.ConnectedServerId())
	if maxPayload != 0 && nc.MaxPayload() != maxPayload {
		fail("INFO max_payload %d, want %d", nc.MaxPayload(), maxPayload)
	}
	ok("INFO max_payload %d", nc.MaxPayload())
	if !nc.HeadersSupported() {
		fail("INFO headers is not true")
	}
	ok("INFO headers true")
	rtt, err := nc.RTT()
	must(err, "PING/PONG")
	ok("PING/PONG round trip %v", rtt)
	nc.Close()
	if !nc.IsClosed() {
		fail("close")
	}
	ok("closed")
}

func casePubsub() {
	pub, sc := mustConn(), mustConn()
	defer pub.Close()
	defer sc.Close()
	s := subj("ps")
	big := make([]byte, 3000)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	msgs := []struct {
		data  []byte
		reply string
	}{{[]byte("hello"), ""}, {[]byte{}, ""}, {bin, ""}, {big, ""}, {[]byte("with reply"), "reply.to.me"}}
	sub, err := sc.SubscribeSync(s)
	must(err, "subscribe")
	must(sc.Flush(), "flush subscriber")
	for _, m := range msgs {
		if m.reply != "" {
			must(pub.PublishRequest(s, m.reply, m.data), "publish with reply")
		} else {
			must(pub.Publish(s, m.data), "publish")
		}
	}
	must(pub.Flush(), "flush publisher")
	for i, m := range msgs {
		r := next(sub, "message")
		if r.Subject != s {
			fail("message %d: subject %q", i, r.Subject)
		}
		if !bytes.Equal(r.Data, m.data) {
			fail("message %d: %d bytes differ from the %d sent", i, len(r.Data), len(m.data))
		}
		if r.Reply != m.reply {
			fail("message %d: reply %q", i, r.Reply)
		}
		ok("message %d: %d bytes, in order, reply %q", i, len(m.data), r.Reply)
	}
	must(sc.Flush(), "flush subscriber")
	if !empty(sub) {
		fail("more messages than published")
	}
	ok("nothing else delivered")
}

func caseWildcards() {
	pub, sc := mustConn(), mustConn()
	defer pub.Close()
	defer sc.Close()
	pats := []string{"w.*", "w.>", "w.*.b", "w.a.>"}
	pubs := []string{"w.a", "w.a.b", "w.b.c.d", "w", "x.a", "w.c.b"}
	want := []int{0x3, 0xe, 0x2, 0x0, 0x0, 0x6}
	subs := make([]*nats.Subscription, len(pats))
	for p, pat := range pats {
		var err error
		subs[p], err = sc.SubscribeSync(subj(pat))
		must(err, "subscribe")
	}
	must(sc.Flush(), "flush subscriber")
	for _, s := range pubs {
		must(pub.Publish(subj(s), []byte(s)), "publish")
	}
	must(pub.Flush(), "flush publisher")
	must(sc.Flush(), "flush subscriber")
	for p, pat := range pats {
		var got []string
		for i, s := range pubs {
			if want[i]&(1<<p) == 0 {
				continue
			}
			m := next(subs[p], "wildcard message")
			if m.Subject != subj(s) {
				fail("%s got %s, want %s", pat, m.Subject, subj(s))
			}
			got = append(got, s)
		}
		if !empty(subs[p]) {
			fail("%s received a subject it does not match", pat)
		}
		ok("%s got %s (only these)", pat, strings.Join(got, " "))
	}
}

func caseQueue() {
	const n = 60
	pub := mustConn()
	defer pub.Close()
	s := subj("q")
	var members [3]*nats.Conn
	var subs [3]*nats.Subscription
	for k := range members {
		members[k] = mustConn()
		defer members[k].Close()
		var err error
		subs[k], err = members[k].QueueSubscribeSync(s, "workers")
		must(err, "queue subscribe")
		must(members[k].Flush(), "flush member")
	}
	all, err := pub.SubscribeSync(s)
	must(err, "plain subscribe")
	for i := 0; i < n; i++ {
		must(pub.Publish(s, []byte(strconv.Itoa(i))), "publish")
	}
	must(pub.Flush(), "flush publisher")
	seen := make([]int, n)
	var per [3]int
	for k := range members {
		must(members[k].Flush(), "flush member")
		for {
			m, err := subs[k].NextMsg(100 * time.Millisecond)
			if err != nil {
				break
			}
			i, err := strconv.Atoi(string(m.Data))
			if err != nil || i < 0 || i >= n {
				fail("unexpected payload %q", m.Data)
			}
			seen[i]++
			per[k]++
		}
	}
	for i, c := range seen {
		if c != 1 {
			fail("message %d delivered %d times to the group", i, c)
		}
	}
	ok("each of %d messages went to exactly one member (%d + %d + %d)", n, per[0], per[1], per[2])
	for i := 0; i < n; i++ {
		next(all, "plain subscriber message")
	}
	if !empty(all) {
		fail("the plain subscriber got more than %d", n)
	}
	ok("a plain subscriber beside the group got all %d", n)
}

func caseRequest() {
	svc, cli := mustConn(), mustConn()
	defer svc.Close()
	defer cli.Close()
	s := subj("svc")
	_, err := svc.Subscribe(s, func(m *nats.Msg) {
		m.Respond(append([]byte("re:"), m.Data...))
	})
	must(err, "responder subscribe")
	must(svc.Flush(), "flush responder")
	for i := 0; i < 5; i++ {
		q := fmt.Sprintf("question %d", i)
		r, err := cli.Request(s, []byte(q), 5*time.Second)
		must(err, "request")
		if string(r.Data) != "re:"+q {
			fail("reply %q, want %q", r.Data, "re:"+q)
		}
		ok("request %q -> %q", q, r.Data)
	}
}

func caseHeaders() {
	pub, sc := mustConn(), mustConn()
	defer pub.Close()
	defer sc.Close()
	if !pub.HeadersSupported() {
		fail("server headers support")
	}
	s := subj("h")
	sub, err := sc.SubscribeSync(s)
	must(err, "subscribe")
	must(sc.Flush(), "flush subscriber")
	m := nats.NewMsg(s)
	m.Header.Add("X-Multi", "one")
	m.Header.Add("X-Multi", "two")
	m.Header.Set("X-Single", "a value with spaces")
	m.Data = []byte("body")
	must(pub.PublishMsg(m), "publish (HPUB)")
	r := next(sub, "HMSG")
	v := r.Header.Values("X-Multi")
	if len(v) != 2 || v[0] != "one" || v[1] != "two" {
		fail("X-Multi values %q", v)
	}
	ok("X-Multi: one, two (both values, in order)")
	if r.Header.Get("X-Single") != "a value with spaces" {
		fail("X-Single %q", r.Header.Get("X-Single"))
	}
	ok("X-Single: %q", r.Header.Get("X-Single"))
	if string(r.Data) != "body" {
		fail("payload %q", r.Data)
	}
	ok("payload 'body' after the headers")
}

func caseNoResponders() {
	nc := mustConn()
	defer nc.Close()
	t0 := time.Now()
	_, err := nc.Request(subj("nobody.home"), []byte("anyone?"), 5*time.Second)
	took := time.Since(t0)
	if !errors.Is(err, nats.ErrNoResponders) {
		fail("request to nobody: %v, want %v", err, nats.ErrNoResponders)
	}
	if took > 2*time.Second {
		fail("no-responders took %v", took)
	}
	ok("request to nobody failed with %q in %v", err, took)
}

func caseMaxPayload() {
	nc := mustConn()
	defer nc.Close()
	max := nc.MaxPayload()
	if max <= 0 || (maxPayload != 0 && max != maxPayload) {
		fail("INFO max_payload %d, want %d", max, maxPayload)
	}
	s := subj("mp")
	sub, err := nc.SubscribeSync(s)
	must(err, "subscribe")
	buf := bytes.Repeat([]byte("m"), int(max)+1)
	must(nc.Publish(s, buf[:max]), "publish max_payload bytes")
	if r := next(sub, "max_payload message"); int64(len(r.Data)) != max {
		fail("got %d bytes", len(r.Data))
	}
	ok("exactly max_payload (%d bytes) is delivered", max)
	err = nc.Publish(s, buf)
	if !errors.Is(err, nats.ErrMaxPayload) {
		fail("publishing %d bytes: %v, want %v", max+1, err, nats.ErrMaxPayload)
	}
	ok("max_payload + 1 bytes refused: %q", err)
	must(nc.Flush(), "connection still usable")
	ok("connection still usable")
}

func caseAuthOK() {
	nc := mustConn()
	defer nc.Close()
	if token != "" {
		ok("connected with the token")
	} else {
		ok("connected with user and password")
	}
	roundtrip(nc, "authenticated")
}

// expectAuthFailure: the connection must be refused for its credentials, not for
// anything else (a closed port is not a pass).
func expectAuthFailure(what string) {
	nc, err := conn()
	if err == nil {
		nc.Close()
		fail("%s: connected, want an authorization error", what)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		fail("%s: %v, want %v", what, err, nats.ErrAuthorization)
	}
	ok("%s refused: %v", what, err)
}

func caseAuthBad() {
	expectAuthFailure("wrong credentials")
	token, user, password = "", "", ""
	expectAuthFailure("no credentials")
}

func caseTLS() {
	nc := mustConn()
	defer nc.Close()
	if _, err := nc.TLSConnectionState(); err != nil {
		fail("not a TLS connection: %v", err)
	}
	ok("TLS connection verified with %s", ca)
	roundtrip(nc, "over TLS")
}

func caseTLSBadCA() {
	nc, err := conn()
	if err == nil {
		nc.Close()
		fail("connected although the server's certificate is not from %s", ca)
	}
	if !strings.Contains(err.Error(), "x509") && !strings.Contains(err.Error(), "certificate") {
		fail("%v, want a certificate verification error", err)
	}
	ok("refused: %v", err)
}

func caseMTLS() {
	nc := mustConn()
	defer nc.Close()
	if _, err := nc.TLSConnectionState(); err != nil {
		fail("not a TLS connection: %v", err)
	}
	ok("TLS connection with client certificate %s", cert)
	roundtrip(nc, "over mutual TLS")
}

func caseMTLSNoCert() {
	nc, err := conn()
	if err == nil {
		nc.Close()
		fail("connected without a client certificate to a server that requires one")
	}
	ok("refused: %v", err)
}

var cases = map[string]func(){
	"connect":        caseConnect,
	"pubsub":         casePubsub,
	"wildcards":      caseWildcards,
	"queue":          caseQueue,
	"request":        caseRequest,
	"headers":        caseHeaders,
	"no_responders":  caseNoResponders,
	"max_payload":    caseMaxPayload,
	"auth_token_ok":  caseAuthOK,
	"auth_token_bad": caseAuthBad,
	"auth_user_ok":   caseAuthOK,
	"auth_user_bad":  caseAuthBad,
	"tls":            caseTLS,
	"tls_bad_ca":     caseTLSBadCA,
	"mtls":           caseMTLS,
	"mtls_no_cert":   caseMTLSNoCert,
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: natsgo_conf URL CASE [--token T] [--user U --password P] [--ca FILE] [--cert FILE --key FILE] [--max-payload N]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	url = os.Args[1]
	name := os.Args[2]
	for k := 3; k < len(os.Args); k += 2 {
		if k+1 >= len(os.Args) {
			usage()
		}
		v := os.Args[k+1]
		switch os.Args[k] {
		case "--token":
			token = v
		case "--user":
			user = v
		case "--password":
			password = v
		case "--ca":
			ca = v
		case "--cert":
			cert = v
		case "--key":
			key = v
		case "--max-payload":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				usage()
			}
			maxPayload = n
		default:
			usage()
		}
	}
	fn, found := cases[name]
	if !found {
		fmt.Fprintf(os.Stderr, "natsgo_conf: unknown case %q\n", name)
		os.Exit(2)
	}
	prefix = fmt.Sprintf("conf.go.%d", os.Getpid())
	fmt.Printf("# nats.go %s, case %s against %s\n", nats.Version, name, url)
	fn()
	fmt.Println("# passed")
}
