"""verify.yml's distribution check knows what each upstream server is logged as, whatever the
inventory names it by: an IP literal as given, a DNS name as every address the balancer resolves it
to (nginx balances over all of them), a name nobody can resolve named in the report instead of an
unexplained failure. Run for real on the controller, which stands in for two balancers (nothing
listens on 127.0.0.1:443 here, so the requests fail: what is checked is what they were judged by)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
INVENTORY = {
    "all": {
        "vars": {"api_domain": "api.example.org"},
        "children": {
            "backend": {"hosts": {}},
            "lb": {
                "hosts": {
                    "edge-1": dict(
                        LOCAL,
                        nginx_lb_backend_port=3999,
                        nginx_lb_upstream_servers=[
                            {"address": "localhost", "port": 4001, "weight": 3},
                            {"address": "192.0.2.7", "weight": 2},
                            {"address": "fd00::7", "port": 4002},
                            {"address": "standby.invalid", "backup": True},
                        ],
                    ),
                    "edge-2": dict(LOCAL, nginx_lb_upstream_servers=[{"address": "nowhere.invalid"}]),
                }
            },
        },
    },
}


@pytest.fixture(scope="module")
def verify_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    (tmp / "hosts.yml").write_text(json.dumps(INVENTORY))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json")
    argv = [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
        os.path.join(ROOT, "playbooks", "verify.yml"),
        "-i", str(tmp / "hosts.yml"), "-e", "verify_distribution_requests=2", "-e", f"deploy_report_dir={tmp}",
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("verify.yml printed no JSON:\n" + (proc.stdout + proc.stderr)[-3000:])
    results = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                results[(task["task"]["name"], host)] = result
    with open(tmp / "deploy-latest.json", encoding="utf-8") as handle:
        return proc, results, json.load(handle)


def distribution_args(results, host):
    result = results[("Send requests through the balancer and count who served them", host)]
    return result.get("invocation", {}).get("module_args", {}).get("distribution"), result


def test_names_are_expected_as_the_addresses_the_balancer_resolves_them_to(verify_run):
    _proc, results, _report = verify_run
    args, _result = distribution_args(results, "edge-1")
    # localhost resolves to 127.0.0.1 here; the balancer's default port applies where none is set;
    # IPv6 the way nginx logs it; the backup server is not expected to serve
    assert "127.0.0.1:4001" in args["expected"], args
    assert {"192.0.2.7:3999", "[fd00::7]:4002"} <= set(args["expected"]), args
    assert not [u for u in args["expected"] if u is None or "standby" in u], args
    assert args["weights"]["127.0.0.1:4001"] == 3 and args["weights"]["192.0.2.7:3999"] == 2, args
    resolved = results[("Resolve the upstream servers given by DNS name, as nginx did when it loaded them", "edge-1")]
    assert sorted(item["item"] for item in resolved["results"]) == ["localhost", "standby.invalid"]


def test_a_name_nobody_can_resolve_is_named_in_the_report(verify_run):
    proc, results, report = verify_run
    assert proc.returncode != 0  # nothing serves here: verify fails, as it must
    assert results[("Send requests through the balancer and count who served them", "edge-2")].get("skipped")
    items = {item["name"]: item for item in report["items"]}
    # one item per balancer: each balances on its own
    item = items["NGINX load balancer distributing traffic to all backends (edge-2)"]
    assert "cannot tell which address nginx uses for nowhere.invalid:3000" in item["figure"], item
    assert "getent ahosts" in item["figure"] and item["status"] == "fail", item
    item = items["NGINX load balancer distributing traffic to all backends (edge-1)"]
    assert item["figure"].startswith("none of 2 requests served"), item
    assert {"TLS certificate valid (edge-1)", "TLS certificate valid (edge-2)"} <= set(items), sorted(items)
