"""Faults on the converged stack, each under load through the balancer from a client host, with every
failed request counted: a killed PgBouncer and a killed backend heal by themselves; a Redis or
PostgreSQL outage that every backend reports alike never takes backends out of rotation, so
liveness and the paths that do not need the missing dependency keep answering 200 (0 x 502), and
the API recovers without any backend being restarted."""

import time

import pytest
from stacklab import BACKENDS, GROUPS, PathLoad, api, login, main_pid, on, record

PGBOUNCER = GROUPS["pgbouncer"][0]
REDIS = GROUPS["redis"][0]
DB = GROUPS["postgresql"][0]
MESSAGES = "/api/messages?limit=1"


def service_pid(host, service):
    return on(host, f"systemctl show -P MainPID {service}").stdout.strip()


def wait_until(predicate, timeout, step=0.2):
    """Seconds until predicate() held; fails after timeout."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        time.sleep(step)
    return time.monotonic() - start


def api_ok(path, token=None):
    return lambda: api("GET", path, token=token)[0] == 200


@pytest.fixture(scope="module")
def token():
    return login()


@pytest.fixture
def backend_pids():
    """The backends' main PIDs before a drill: a dependency outage must not need any restart."""
    before = {b: main_pid(b) for b in BACKENDS}
    yield before
    assert {b: main_pid(b) for b in BACKENDS} == before


def test_pgbouncer_killed_comes_back_by_itself_and_the_api_heals_within_seconds(token, backend_pids):
    load = PathLoad(MESSAGES, "/health", token=token)
    old = service_pid(PGBOUNCER, "pgbouncer")
    killed = time.time()
    on(PGBOUNCER, f"kill -9 {old}")
    back = wait_until(lambda: service_pid(PGBOUNCER, "pgbouncer") not in (old, "0", ""), timeout=30)
    healed = wait_until(api_ok(MESSAGES, token), timeout=60) + back
    time.sleep(3)  # and it stays healed
    load.finish()
    last_bad = load.last_bad(MESSAGES)
    assert load.count(MESSAGES, 200) > 0 and load.failures("/health") == 0, load.counts
    assert on(PGBOUNCER, "systemctl is-active pgbouncer").stdout.strip() == "active"
    assert healed < 20, healed
    record("chaos: PgBouncer kill -9 -> running again by itself (s)", round(back, 1))
    record("chaos: PgBouncer kill -9 -> API answers through it again (s)", round(healed, 1))
    record(
        "chaos: PgBouncer kill -9 -> failed API reads / last one after kill (s)",
        f"{load.failures(MESSAGES)} / {round(last_bad - killed, 1) if last_bad else 'none'}",
    )


def test_a_killed_backend_costs_no_failed_get():
    victim = BACKENDS[1]
    load = PathLoad("/health", "/health/ready", MESSAGES, token=login())
    old = main_pid(victim)
    on(victim, f"kill -9 {old}")
    back = wait_until(
        lambda: (
            main_pid(victim) not in (old, "0")
            and on(victim, "curl -fs -m 2 http://127.0.0.1:3000/health/ready", check=False).returncode == 0
        ),
        timeout=60,
    )
    time.sleep(3)
    load.finish()
    for path in load.counts:
        assert load.failures(path) == 0, load.counts
    record("chaos: backend kill -9 -> ready again by itself (s)", round(back, 1))
    record(
        "chaos: backend kill -9 -> requests ok / failed",
        f"{sum(load.count(p, 200) for p in load.counts)} / {sum(load.failures(p) for p in load.counts)}",
    )


@pytest.mark.parametrize(
    "host, service, unaffected",
    [
        (REDIS, "redis-server", ["/health", "/health/live", MESSAGES]),
        (DB, "postgresql", ["/health", "/health/live", "/admin/locks"]),
    ],
    ids=["redis stopped", "postgresql stopped"],
)
def test_a_dependency_outage_keeps_every_backend_in_rotation(token, backend_pids, host, service, unaffected):
    load = PathLoad("/health/detailed", *unaffected, token=token)
    on(host, f"systemctl stop {service}")
    try:
        time.sleep(15)  # longer than nginx_lb's fail_timeout: backends would have been ejected by now
    finally:
        on(host, f"systemctl start {service}")
    recovered = wait_until(api_ok("/health/detailed"), timeout=90)
    recovered_api = wait_until(api_ok(MESSAGES, token), timeout=90) if service == "postgresql" else None
    load.finish()
    assert load.count("/health/detailed", 503) > 0, load.counts  # the outage was seen, and reported as 503
    for path in load.counts:
        assert load.count(path, 502) == 0, load.counts
    for path in unaffected:
        assert load.failures(path) == 0, load.counts
    answered = sum(load.count(p, 200) for p in unaffected)
    record(f"chaos: {service} stopped 15 s -> deep-health 503s / 502s", f"{load.count('/health/detailed', 503)} / 0")
    record(f"chaos: {service} stopped -> unaffected paths ok / failed", f"{answered} / 0")
    record(f"chaos: {service} started -> /health/detailed healthy again (s)", round(recovered, 1))
    if recovered_api is not None:
        record(f"chaos: {service} started -> API reads answer again (s)", round(recovered + recovered_api, 1))
