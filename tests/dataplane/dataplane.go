// dataplane.go - the gateway's data plane driven by nats.go, the official NATS Go
// client (Debian golang-github-nats-io-go-nats-dev, built in GOPATH mode): the JSON
// formats of p.*, e.*, nodes.* and sys.* checked from outside C. The same checks
// exist for nats.js (dataplane.mjs).
//
//	dataplane URL DEVICE
//
// Prints "ok - ..." per check; exits 0 when all passed, 1 at the first failure.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

type point struct {
	Type  string   `json:"type"`
	Key   string   `json:"key"`
	Time  string   `json:"time"`
	Value *float64 `json:"value,omitempty"`
	Text  *string  `json:"text,omitempty"`
}

type node struct {
	ID         string  `json:"id"`
	Type       string  `json:"type"`
	Parent     string  `json:"parent"`
	Tombstone  bool    `json:"tombstone"`
	Points     []point `json:"points"`
	EdgePoints []point `json:"edgePoints"`
}

var nc *nats.Conn

func check(cond bool, what string, detail interface{}) {
	if !cond {
		fmt.Printf("not ok - %s: %v\n", what, detail)
		os.Exit(1)
	}
	fmt.Printf("ok - %s\n", what)
}

func req(subject, body string, out interface{}) {
	m, err := nc.Request(subject, []byte(body), 5*time.Second)
	check(err == nil, "request "+subject, err)
	if err := json.Unmarshal(m.Data, out); err != nil {
		check(false, "the answer to "+subject+" is JSON", string(m.Data))
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Println("usage: dataplane URL DEVICE")
		os.Exit(2)
	}
	url, device := os.Args[1], os.Args[2]
	var err error
	nc, err = nats.Connect(url, nats.NoReconnect())
	check(err == nil, "connect", err)
	id := fmt.Sprintf("go%d", os.Getpid())

	var ack map[string]interface{}
	req("e."+id+"."+device, `[{"type":"nodeType","text":"variable"}]`, &ack)
	check(ack["ok"] == true && len(ack) == 1, "create a node with e.<node>.<parent>", ack)

	ch := make(chan *nats.Msg, 4)
	sub, _ := nc.ChanSubscribe("p."+id, ch)
	defer sub.Unsubscribe()
	t := "2026-05-06T07:08:09.000000001Z"
	req("p."+id, `[{"type":"valueSet","value":-12.75,"time":"`+t+`"},{"type":"table","text":"holdingRegister"}]`, &ack)
	check(ack["ok"] == true, "p.<node> acknowledged after the commit", ack)
	select {
	case m := <-ch:
		var pts []point
		json.Unmarshal(m.Data, &pts)
		check(len(pts) == 2 && *pts[0].Value == -12.75, "a subscriber of p.<node> sees the points", string(m.Data))
	case <-time.After(5 * time.Second):
		check(false, "a subscriber of p.<node> sees the points", "timeout")
	}

	var r struct {
		Nodes []node `json:"nodes"`
		Error string `json:"error"`
	}
	req("nodes.all."+id, "", &r)
	check(len(r.Nodes) == 1, "nodes.all.<node> finds the node", r)
	n := r.Nodes[0]
	check(n.ID == id && n.Type == "variable" && n.Parent == device && !n.Tombstone, "id, type, parent, tombstone", n)
	var vs *point
	for i := range n.Points {
		if n.Points[i].Type == "valueSet" {
			vs = &n.Points[i]
		}
	}
	check(vs != nil && vs.Key == "0" && *vs.Value == -12.75 && vs.Time == t, "value, key and nanosecond time", vs)

	var e map[string]string
	req("e."+id+"."+id, `[{"type":"nodeType","text":"variable"}]`, &e)
	check(strings.Contains(e["error"], "own parent"), "a node cannot be its own parent", e)
	req("nodes.all.all", "", &e)
	check(strings.Contains(e["error"], "name a parent"), "nodes.all.all is refused", e)
	req("nodes."+device+".all", `{"colour":"red"}`, &e)
	check(strings.Contains(e["error"], "unknown member"), "an unknown query member is refused", e)

	var info map[string]interface{}
	req("sys."+device+".info", "", &info)
	check(info["device"] == device && info["pointsWritten"].(float64) >= 2, "sys.<device>.info", info)
	nc.Close()
}
