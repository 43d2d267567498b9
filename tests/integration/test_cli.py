"""The command line: help, version, exit codes, and check-config's error messages."""
import json
import os

from conftest import ROOT, run


def test_help_lists_every_command():
    r = run(["--help"])
    assert r.returncode == 0
    for cmd in ("serve", "check-config", "version", "help"):
        assert cmd in r.stdout
    assert "Exit codes" in r.stdout


def test_help_for_each_subcommand():
    for cmd in ("serve", "check-config", "version"):
        r = run(["help", cmd])
        assert r.returncode == 0, cmd
        assert ("edgepoint " + cmd) in r.stdout or cmd == "version"
        r2 = run([cmd, "--help"])
        assert r2.returncode == 0
        assert r2.stdout == r.stdout


def test_version():
    r = run(["version"])
    assert r.returncode == 0
    assert r.stdout.startswith("edgepoint ")


def test_usage_errors_exit_2():
    assert run([]).returncode == 2
    r = run(["frobnicate"])
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr
    r = run(["serve", "-c"])
    assert r.returncode == 2
    assert "needs a FILE" in r.stderr
    assert run(["check-config"]).returncode == 2
    assert run(["help", "nope"]).returncode == 2


def test_check_config_accepts_the_example():
    path = os.path.join(ROOT, "config", "edgepoint.example.json")
    r = run(["check-config", path])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(path + ": ok")


def check_bad(tmp_path, text, expected):
    p = tmp_path / "edgepoint.json"
    p.write_text(text)
    r = run(["check-config", str(p)])
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert r.stderr.strip() == expected.replace("FILE", str(p)), r.stderr


def test_check_config_range_error_names_path_value_and_bounds(tmp_path):
    cfg = {"nodes": [{"id": "plc", "type": "modbus",
                      "points": {"protocol": "tcp", "uri": "127.0.0.1:502"},
                      "children": [{"id": "io1", "type": "modbusIo",
                                    "points": {"address": 70000}}]}]}
    check_bad(tmp_path, json.dumps(cfg),
              "FILE: nodes[0].children[0].points.address: 70000 is not in 0..65535")


def test_check_config_syntax_error_names_line_and_column(tmp_path):
    p = tmp_path / "edgepoint.json"
    p.write_text('{\n  "device_id": "gw",\n  "log": {"level": "info",}\n}\n')
    r = run(["check-config", str(p)])
    assert r.returncode == 3
    assert r.stderr.startswith(str(p) + ":3:"), r.stderr
    assert "JSON syntax error" in r.stderr


def test_check_config_unknown_key_suggests(tmp_path):
    check_bad(tmp_path, '{"bus": {"max_paylod": 10}}',
              'FILE: bus.max_paylod: unknown key (did you mean "max_payload"?)')


def test_check_config_bad_enum_lists_allowed(tmp_path):
    check_bad(tmp_path, '{"log": {"level": "verbose"}}',
              'FILE: log.level: "verbose" is not one of error, warn, notice, info, debug')


def test_check_config_missing_file(tmp_path):
    p = tmp_path / "nope.json"
    r = run(["check-config", str(p)])
    assert r.returncode == 3
    assert str(p) in r.stderr and "No such file" in r.stderr


def test_serve_with_bad_config_exits_3(tmp_path):
    p = tmp_path / "edgepoint.json"
    p.write_text('{"device_id": "has space"}')
    r = run(["serve", "-c", str(p)])
    assert r.returncode == 3
    assert "device_id" in r.stderr and '"has space"' in r.stderr
