"""Rules on the gateway (docs/rules.md), end to end with a pymodbus simulator and an
external NATS client: a register crosses a threshold, the rule activates, a coil on
the simulator is written and the client receives the notification; the register
falls back below the threshold minus the hysteresis and the inactive action runs. A
stale sensor fires its condition. A restart in the middle of a minActive delay runs
the action at the original due time, once; a restart while active re-runs nothing
(silent) or writes the output again (reassert). Malformed rules give error points
with exact texts."""
import json
import time

import pytest

from conftest import Daemon, free_port, wait_for
from mbsim import Sim, points, text, wait_point


@pytest.fixture
def sim():
    s = Sim("pymodbus", port=free_port()).start()
    yield s
    s.stop()


def bus(port):
    return {"protocol": "tcp", "uri": "127.0.0.1:%d" % port, "pollPeriod": 50, "timeout": 500}


def pump_tree(port, hysteresis=5, min_active=0, on_start=None, stale=None):
    """plc: a level register (hr 0) and a pump coil (coil 0); rule r1: level > 80 (off
    below 80 - hysteresis) sets the coil and notifies; inactive clears the coil."""
    on = {"action": "setValue", "nodeId": "pump", "pointType": "valueSet", "value": 1}
    if on_start:
        on["onStart"] = on_start
    conds = [{"id": "c1", "type": "condition",
              "points": {"conditionType": "pointValue", "nodeId": "level", "pointType": "value",
                         "operator": ">", "value": 80, "hysteresis": hysteresis}}]
    if stale:
        conds = [{"id": "c1", "type": "condition",
                  "points": {"conditionType": "stale", "nodeId": "level", "pointType": "value",
                             "staleAfter": stale}}]
    return [
        {"id": "plc", "type": "modbus", "points": bus(port), "children": [
            {"id": "level", "type": "modbusIo",
             "points": {"table": "holdingRegister", "address": 0}},
            {"id": "pump", "type": "modbusIo", "points": {"table": "coil", "address": 0}}]},
        {"id": "r1", "type": "rule", "points": {"description": "pump on high level",
                                                 "minActive": min_active},
         "children": conds + [
             {"id": "a1", "type": "action", "points": on},
             {"id": "a2", "type": "action",
              "points": {"action": "notify", "text": "{rule} is {state}: level {level.value}"}},
             {"id": "a3", "type": "actionInactive",
              "points": {"action": "setValue", "nodeId": "pump", "pointType": "valueSet",
                         "value": 0}},
             {"id": "a4", "type": "actionInactive",
              "points": {"action": "notify", "text": "{rule} is {state}: level {level.value}"}}]}]


def rule_active(c):
    p = points(c, "gw-test", "r1")
    return p.get("active", {}).get("value")


def test_threshold_coil_notification_and_hysteresis(tmp_path, sim):
    sim.set("hr", 0, [50])
    d = Daemon(tmp_path, config={"nodes": pump_tree(sim.port)}).start()
    c = d.client()
    n = d.client()
    try:
        n.sub("notify.>")
        n.ping()
        wait_point(c, "plc", "level", lambda p: p.get("value", {}).get("value") == 50, "level")
        wait_for(lambda: rule_active(c) == 0, what="r1 inactive")
        sim.set("hr", 0, [85])  # above 80: active, the coil is written, a notification
        wait_for(lambda: sim.get("co", 0) == [1], what="the coil set by the rule")
        m = n.next_msg(timeout=10)
        assert m[0] == "notify.r1"
        body = json.loads(m[4])
        assert body["rule"] == "r1" and body["active"] is True
        assert body["text"] == "r1 is active: level 85", body
        assert rule_active(c) == 1
        assert points(c, "r1", "c1")["active"]["value"] == 1
        sim.set("hr", 0, [78])  # below 80 but above 80 - 5: still active (hysteresis)
        wait_point(c, "plc", "level", lambda p: p.get("value", {}).get("value") == 78, "78")
        assert rule_active(c) == 1 and sim.get("co", 0) == [1]
        sim.set("hr", 0, [74])  # below 75: inactive, the coil is cleared
        wait_for(lambda: sim.get("co", 0) == [0], what="the coil cleared by actionInactive")
        m = n.next_msg(timeout=10)
        assert json.loads(m[4])["text"] == "r1 is inactive: level 74"
        assert rule_active(c) == 0
        lc = points(c, "gw-test", "r1")["lastChange"]["text"]
        assert lc.endswith("Z")
    finally:
        c.close()
        n.close()
        assert d.stop() == 0


def test_stale_sensor_fires(tmp_path, sim):
    sim.set("hr", 0, [10])
    tree = pump_tree(sim.port, stale=1500)
    tree[0]["points"]["pollPeriod"] = 100
    tree[0]["children"][0]["points"]["deadband"] = 1000  # unchanged readings are no change
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        wait_point(c, "plc", "level", lambda p: p.get("value", {}).get("value") == 10, "level")
        t0 = time.monotonic()
        # The value never changes: 1.5 s after its last change the condition holds.
        wait_for(lambda: rule_active(c) == 1, timeout=20, what="the stale condition")
        assert time.monotonic() - t0 >= 1.0
        wait_for(lambda: sim.get("co", 0) == [1], what="the coil")
    finally:
        c.close()
        assert d.stop() == 0


def test_restart_during_min_active_runs_once_at_the_due_time(tmp_path, sim):
    sim.set("hr", 0, [50])
    d = Daemon(tmp_path, config={"nodes": pump_tree(sim.port, min_active=4000)}).start()
    c = d.client()
    try:
        wait_for(lambda: rule_active(c) == 0, what="r1 inactive")
        sim.set("hr", 0, [90])
        p = wait_point(c, "gw-test", "r1", lambda p: "pending" in p, "the pending delay")
        t_pending = time.time()
        assert p["pending"]["value"] == 1
        c.close()
        assert d.stop() == 0  # one second or so into the four
        assert sim.get("co", 0) == [0]
        d.start()
        c = d.client()
        wait_for(lambda: sim.get("co", 0) == [1], timeout=15, what="the coil after the delay")
        elapsed = time.time() - t_pending
        assert 3.0 <= elapsed < 6.5, elapsed  # the original due time, not 4 s after the start
        assert rule_active(c) == 1
        assert points(c, "gw-test", "r1")["pending"].get("tombstone"), "the delay is over"
        # Once: the coil is cleared by hand and stays cleared.
        sim.set("co", 0, [0])
    finally:
        c.close()
        assert d.stop() == 0
    # A restart while active: silent (the default) writes nothing.
    d.start()
    c = d.client()
    try:
        wait_for(lambda: "rules" in d.output() and "loaded" in d.output(), what="rules loaded")
        wait_point(c, "plc", "level", lambda p: p.get("value", {}).get("value") == 90, "level")
        assert rule_active(c) == 1
        assert sim.get("co", 0) == [0]
    finally:
        c.close()
        assert d.stop() == 0


def test_restart_while_active_reasserts(tmp_path, sim):
    sim.set("hr", 0, [90])
    d = Daemon(tmp_path, config={"nodes": pump_tree(sim.port, on_start="reassert")}).start()
    c = d.client()
    try:
        wait_for(lambda: sim.get("co", 0) == [1], what="the coil")
        sim.set("co", 0, [0])  # someone switched it off by hand
        c.close()
        assert d.stop() == 0
        d.start()
        c = d.client()
        wait_for(lambda: sim.get("co", 0) == [1], what="the coil written again")
    finally:
        c.close()
        assert d.stop() == 0


@pytest.mark.parametrize("cond,error", [
    ({"conditionType": "pointValue", "nodeId": "nope", "pointType": "value", "operator": ">",
      "value": 1}, "nodeId: unknown node nope"),
    ({"conditionType": "pointValue", "nodeId": "level", "operator": ">", "value": 1},
     "pointType is missing (the point to watch, such as value)"),
    ({"conditionType": "pointValue", "nodeId": "level", "pointType": "value", "operator": ">"},
     "operator > needs a value (a number)"),
    ({"conditionType": "schedule", "start": "06:00", "end": "22:00", "timeZone": "Mars/Olympus"},
     None),
    ({"conditionType": "stale", "nodeId": "level", "pointType": "value"},
     "staleAfter is missing (milliseconds without a change after which the point is stale)"),
    ({"conditionType": "ruleActive", "nodeId": "level"}, "nodeId: level is not a rule"),
])
def test_malformed_rules_give_error_points(tmp_path, sim, cond, error):
    tree = pump_tree(sim.port)
    tree[1]["children"][0]["points"] = cond
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    try:
        p = wait_point(c, "r1", "c1", lambda p: text(p, "error") != "", "the error point")
        if error is None:  # the zone's message is the time-zone module's
            assert text(p, "error").startswith("timeZone: ") and "Mars/Olympus" in text(p, "error")
        else:
            assert text(p, "error") == error
        assert rule_active(c) == 0
        assert d.proc.poll() is None
        # Fixed at runtime: the error point clears.
        r = c.request("p.c1", json.dumps([
            {"type": "conditionType", "text": "pointValue"}, {"type": "nodeId", "text": "level"},
            {"type": "pointType", "text": "value"}, {"type": "operator", "text": ">"},
            {"type": "value", "value": 1}, {"type": "timeZone", "text": ""},
            {"type": "staleAfter", "tombstone": 1}]))
        assert r.get("ok") is True, r
        wait_point(c, "r1", "c1", lambda p: text(p, "error") == "", "the error cleared")
    finally:
        c.close()
        assert d.stop() == 0


def test_repeat_and_action_state(tmp_path, sim):
    sim.set("hr", 0, [50])
    tree = pump_tree(sim.port)
    tree[1]["children"][2]["points"]["repeat"] = 300  # a2, the notification, while active
    d = Daemon(tmp_path, config={"nodes": tree}).start()
    c = d.client()
    n = d.client()
    try:
        n.sub("notify.r1")
        n.ping()
        wait_for(lambda: rule_active(c) == 0, what="r1 inactive")
        assert points(c, "r1", "a1")["active"]["value"] == 0
        assert points(c, "r1", "a3")["active"]["value"] == 1
        sim.set("hr", 0, [95])
        texts = [json.loads(n.next_msg(timeout=10)[4])["text"] for _ in range(3)]
        assert texts == ["r1 is active: level 95"] * 3  # once, then repeated
        a1 = points(c, "r1", "a1")
        assert a1["active"]["value"] == 1 and a1["lastRun"]["text"].endswith("Z")
        assert points(c, "r1", "a3")["active"]["value"] == 0
        sim.set("hr", 0, [10])
        m = n.next_msg(timeout=10)  # the inactive notification (a4): no more repeats
        assert json.loads(m[4])["text"] == "r1 is inactive: level 10"
        wait_for(lambda: points(c, "r1", "a3")["active"]["value"] == 1, what="a3 active")
        n.ping()
        with pytest.raises(Exception):
            n.next_msg(timeout=1)  # nothing more in a second (repeat every 0.3 s)
    finally:
        c.close()
        n.close()
        assert d.stop() == 0
