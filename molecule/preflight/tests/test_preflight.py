"""Pre-flight tells an operator everything that is wrong, at once, before anything is deployed:
missing groups, unreachable hosts, blocked or dead ports (from the side that uses them), disk, OS."""

import contextlib
import json

import labkit
import pytest

testinfra_hosts = ["preflight-db"]


def preflight(*extra_vars, inventories=()):
    """The scenario's converge.yml (the preflight role) with Molecule's inventory plus any given."""
    args = [arg for item in extra_vars for arg in ("-e", item)]
    run = labkit.play("converge.yml", *args, inventory=[labkit.molecule_inventory(), *inventories], timeout=300)
    return run.rc, run.output


def test_a_healthy_topology_passes_and_says_what_it_checked():
    rc, out = preflight()
    assert rc == 0, out
    # db -> nothing; app: pgbouncer->pg, backend->pgbouncer, backend->pg, backend->redis, lb->backend (5);
    # app as the monitoring host: node exporter on both hosts, the PgBouncer, nginx, postgres and redis
    # exporters, the backend's metrics, the balancer's HTTPS (8); controller -> lb 80 and 443 (2).
    assert "Pre-flight passed: 2 hosts, 15 port paths, disk and OS checked" in out
    assert "is not tested" not in out and "unsupported" not in out


@contextlib.contextmanager
def dropped(host, port):
    """A firewall on the host that drops every new connection to the port, while the block runs."""
    rule = f"INPUT -p tcp --dport {port} -j DROP"
    assert host.run(f"iptables -A {rule}").rc == 0
    try:
        yield
    finally:
        host.run(f"iptables -D {rule}")


@pytest.fixture
def redis_port_dropped(host):
    with dropped(host, 6379):
        yield


def test_a_firewall_drop_is_reported_as_filtered_from_the_backend_side(redis_port_dropped):
    rc, out = preflight()
    assert rc != 0
    assert "Pre-flight found 1 problem(s)" in out
    assert "from preflight-app to" in out and ":6379 (backend -> redis) expected open, found filtered" in out


@pytest.fixture
def redis_stopped(host):
    assert host.run("systemctl stop redis-server").rc == 0
    yield
    host.run("systemctl start redis-server")


def test_a_stopped_existing_service_is_reported_as_refused(redis_stopped):
    rc, out = preflight()
    assert rc != 0
    assert ":6379 (backend -> redis) expected open, found refused" in out


def test_ports_of_services_still_to_deploy_only_need_to_be_reachable():
    # Nothing listens on 6432, 3000, 80 or 443 yet: refused is fine, as the first test showed.
    rc, out = preflight("{'preflight_paths': [{'name': 'must listen', 'from': 'backend', 'to_group': 'pgbouncer', "
                        "'port': 6432, 'expect': 'open'}]}")  # fmt: skip
    assert rc != 0
    assert "(must listen (preflight-app)) expected open, found refused" in out


def test_each_path_probes_the_port_the_inventory_configures(tmp_path):
    ports = tmp_path / "ports.yml"
    app = {"preflight-app": {"pgbouncer_listen_port": 7432}}
    ports.write_text(json.dumps({"all": {"children": {"pgbouncer": {"hosts": app}}}}))
    path = ("{'preflight_paths': [{'name': 'must listen', 'from': 'backend', 'to_group': 'pgbouncer', 'port': 6432, "
            "'port_vars': ['pgbouncer_listen_port'], 'expect': 'open'}]}")  # fmt: skip
    rc, out = preflight(path, inventories=[str(ports)])
    assert rc != 0
    assert ":7432 (must listen (preflight-app)) expected open, found refused" in out, out[-3000:]
    # the default paths read PostgreSQL's and Redis's ports from their variables
    rc, out = preflight("preflight_redis_port=6390")
    assert rc != 0
    assert ":6390 (backend -> redis) expected open, found refused" in out, out[-3000:]


@pytest.fixture
def exporter_port_dropped(host):
    with dropped(host, 9300):
        yield


def test_monitoring_paths_probe_each_exporter_where_the_inventory_has_it_listen(host, exporter_port_dropped, tmp_path):
    # the db host's postgres exporter on port 9300 at its listen address (which wins over monitoring_address),
    # and a firewall dropping that port: reported from the monitoring host's side
    address = host.run("hostname -I").stdout.split()[0]
    db = {"preflight-db": {"monitoring_ports": {"postgres": 9300}, "monitoring_listen_address": address,
                           "monitoring_address": "192.0.2.1"}}  # fmt: skip
    extra = tmp_path / "exporter.yml"
    extra.write_text(json.dumps({"all": {"children": {"postgresql": {"hosts": db}}}}))
    rc, out = preflight(inventories=[str(extra)])
    assert rc != 0
    assert "Pre-flight found 1 problem(s)" in out, out[-3000:]
    assert (f"from preflight-app to {address}:9300 (monitoring -> postgres exporter (preflight-db)) "
            "expected open or refused, found filtered") in out, out[-3000:]  # fmt: skip


def test_missing_groups_fail_before_any_host_is_contacted():
    rc, out = preflight("{'preflight_required_groups': ['pgbouncer', 'backend', 'lb', 'loadgen']}")
    assert rc != 0
    assert "the inventory lacks the group(s) loadgen" in out
    assert "Read what the checks need" not in out


def test_a_path_without_target_fails_naming_the_variable():
    rc, out = preflight("preflight_redis_host=")
    assert rc != 0
    assert "backend -> redis" in out and "preflight_redis_host" in out


def test_every_problem_of_every_host_is_in_one_report(tmp_path):
    ghost = tmp_path / "ghost.yml"
    ghost.write_text(
        "all:\n  children:\n    backend:\n      hosts:\n        preflight-ghost:\n"
        "          ansible_connection: community.docker.docker\n"
    )
    rc, out = preflight("preflight_min_free_mb=100000000", inventories=[str(ghost)])
    assert rc != 0
    assert "host preflight-ghost: unreachable" in out
    assert "host preflight-db:" in out and "needs preflight_min_free_mb=100000000" in out
    assert "host preflight-app:" in out


def test_an_untested_os_warns_and_an_unsupported_one_fails():
    rc, out = preflight("{'preflight_tested_os': [{'distribution': 'Debian', 'major': '12'}], "
                        "'preflight_untested_os': [{'distribution': 'Debian', 'major': '13'}]}")  # fmt: skip
    assert rc == 0, out
    assert "preflight-app: Debian 13 is not tested by this collection" in out
    rc, out = preflight(
        "{'preflight_tested_os': [{'distribution': 'Debian', 'major': '12'}], 'preflight_untested_os': []}"
    )
    assert rc != 0
    assert "host preflight-app: Debian 13 is not supported" in out
    assert "preflight_allow_unsupported_os" in out
