"""The stack site.yml deployed from inventories/lab-alt - four backends, other ports, names, database
and domain than inventories/lab, Debian 13 everywhere - runs with the values that inventory sets, and
verify.yml's report measured it with them: every backend healthy and given its fair share, PgBouncer
pooling on its port, the API over HTTPS through the balancer. Every expected value below is read
from the inventory, none is written here."""

import glob
import json
import os
import shlex
import sys

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "_shared"))

import labkit  # noqa: E402

INVENTORY = os.path.join(labkit.PROJECT, "inventories", "lab-alt")


def _load(name):
    with open(os.path.join(INVENTORY, name), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


GROUPS, HOSTVARS = labkit.inventory_hosts(INVENTORY)
ALL = _load("group_vars/all.yml")
BACKEND = _load("group_vars/backend.yml")
PGBOUNCER = _load("group_vars/pgbouncer.yml")
LB = _load("group_vars/lb.yml")


def on(host, script, check=True):
    return labkit.docker_exec(HOSTVARS[host]["ansible_host"], script, check=check)


@pytest.fixture(scope="module")
def report():
    """The last deploy report of this lab (deploy_report_dir: reports/lab-alt): the converge's."""
    names = sorted(glob.glob(os.path.join(labkit.PROJECT, "reports", "lab-alt", "deploy-2*.json")))
    assert names, "site.yml wrote no report under reports/lab-alt"
    with open(names[-1], encoding="utf-8") as fh:
        return json.load(fh)


def test_verify_passed_every_check_it_measured(report):
    failed = [item for item in report["items"] if item["status"] not in ("pass", "not_checked")]
    assert report["result"] == "PASS" and not failed, failed


def test_every_backend_of_the_inventory_was_healthy_and_given_its_fair_share(report):
    items = {item["name"]: item for item in report["items"]}
    backends = GROUPS["backend"]
    direct = items["All backend servers healthy (every health endpoint, directly)"]
    assert direct["figure"].startswith(f"{4 * len(backends)}/{4 * len(backends)} "), direct
    lb = GROUPS["lb"][0]
    share = items[f"NGINX load balancer distributing traffic to all backends ({lb})"]
    # "98 / 95 / 107 / 100 of 400 requests (...)": one count per upstream server, every one measured
    assert share["status"] == "pass" and len(share["figure"].split(" of ")[0].split(" / ")) == len(backends), share


def test_each_service_runs_under_the_inventorys_name_and_port():
    for backend in GROUPS["backend"]:
        assert on(backend, f"systemctl is-active {BACKEND['backend_node_service_name']}").stdout.strip() == "active"
        listening = on(backend, f"ss -Htln 'sport = :{BACKEND['backend_node_port']}'").stdout
        assert listening.strip(), f"{backend}: nothing listens on {BACKEND['backend_node_port']}"
    pgbouncer = GROUPS["pgbouncer"][0]
    assert on(pgbouncer, f"ss -Htln 'sport = :{PGBOUNCER['pgbouncer_listen_port']}'").stdout.strip()
    lb = GROUPS["lb"][0]
    status = on(lb, f"curl -s http://127.0.0.1:{LB['nginx_lb_status_port']}/nginx_status").stdout
    assert "Active connections" in status, status


def test_the_api_answers_over_https_through_the_balancer_from_every_backend():
    client, lb = GROUPS["lab_util"][0], GROUPS["lb"][0]
    address = HOSTVARS[lb]["lab_address"]
    requests = 8 * len(GROUPS["backend"])
    curl = (
        f"curl -sf --cacert /etc/ssl/ywlab/acme-root.pem --resolve {ALL['api_domain']}:443:{address} "
        f"https://{ALL['api_domain']}/health"
    )
    out = on(client, f"for i in $(seq {requests}); do {curl}; echo; done").stdout
    seen = {json.loads(line).get("server") for line in out.splitlines() if line.strip()}
    assert seen == set(GROUPS["backend"]), seen


OWNER_AND_ROWS = "SELECT tableowner, (SELECT count(*) FROM church) FROM pg_tables WHERE tablename = 'church'"


def test_phase_1_data_lives_in_the_inventorys_database_owned_by_its_user():
    db = GROUPS["postgresql"][0]
    psql = ["runuser", "-u", "postgres", "--", "psql", "-tA", "-F", " ", "-d", ALL["app_db_name"], "-c", OWNER_AND_ROWS]
    owner, rows = on(db, shlex.join(psql)).stdout.split()
    assert owner == ALL["app_db_user"] and int(rows) > 0, (owner, rows)


def served_releases():
    """The release each backend reports on its own loopback, at the port the inventory gives it."""
    out = {}
    for backend in GROUPS["backend"]:
        body = on(backend, f"curl -s -m 5 http://127.0.0.1:{BACKEND['backend_node_port']}/health/ready").stdout
        out[backend] = json.loads(body).get("release")
    return out


def test_the_code_rollback_returns_every_backend_to_the_release_before():
    """Runs last: it leaves the stack rolled back. Phase 1 ran another release than site.yml's."""
    deployed = served_releases()
    assert len(set(deployed.values())) == 1, deployed
    run = labkit.play(
        os.path.join(labkit.PROJECT, "rollback.yml"),
        "-e",
        "rollback_parts=code",
        inventory=INVENTORY,
        cwd=labkit.PROJECT,
    )
    assert run.rc == 0, run.tail()
    after = served_releases()
    assert len(set(after.values())) == 1 and set(after.values()) != set(deployed.values()), (deployed, after)
    names = sorted(glob.glob(os.path.join(labkit.PROJECT, "reports", "lab-alt", "rollback-2*.json")))
    with open(names[-1], encoding="utf-8") as fh:
        assert json.load(fh)["result"] == "PASS"
