"""rollback.yml on the full lab, every part, after site.yml moved Phase 1 (v1.0.0 straight to
PostgreSQL, the API name on the first backend) to Phase 2 (v1.1.0 through PgBouncer behind the
balancer). The half-way deploy before (test_5) left v1.0.0 running: site.yml's backend stage deploys
v1.1.0 again first (the rest of Phase 2 is as the converge left it), so that the code rollback has a
deployment to undo. The tests run in this order; each starts from where the previous one left the lab."""

import json
import re

import pytest
from stacklab import (
    ALL_VARS,
    BACKENDS,
    GROUPS,
    LoadClient,
    api,
    dns_answer,
    env_of,
    login,
    on,
    play,
    psql,
    record,
    reports,
    served_releases,
)

PGBOUNCER = GROUPS["pgbouncer"][0]
DATABASE = ALL_VARS["app_db_name"]
BACKUP_DIR = "/var/backups/ywmessaging-db"
LB_ADDRESS = ALL_VARS["site_dns_ipv4"][0]
BACKEND_1_ADDRESS = ALL_VARS["rollback_dns_target"]


def db_endpoint(backend):
    return env_of(backend)["DATABASE_URL"].split("@", 1)[1].split("/", 1)[0]


@pytest.fixture(scope="module")
def written():
    """Messages written through the API (HTTPS, the balancer, PgBouncer) before any rollback."""
    token = login()
    ids = []
    for n in range(20):
        status, row = api(
            "POST",
            "/api/messages",
            {"content": f"before rollback {n}", "targetType": "group", "targetIds": ["rollback-drill"]},
            token,
        )
        assert status == 201, row
        ids.append(int(row["id"]))
    return ids


def dumps():
    """Every dump in the backup directory, safety dumps included."""
    return set(on(PGBOUNCER, f"find {BACKUP_DIR} -name '*.dump'").stdout.split())


def still_there(ids):
    return int(psql(f"SELECT count(*) FROM messages WHERE id IN ({','.join(map(str, ids))})"))  # noqa: S608 (ints)


def test_site_yml_after_a_code_rollback_deploys_the_release_again_and_verifies_it():
    run = play("site.yml", "--tags", "backend,verify")
    assert run.rc == 0, run.tail()
    assert reports("deploy")[-1]["result"] == "PASS"
    record("site.yml backend + verify after a code rollback (s)", round(run.seconds, 1))


def test_site_moved_phase_1_to_phase_2(written):
    assert set(served_releases().values()) == {"1.1.0"}
    assert {db_endpoint(b) for b in BACKENDS} == {f"{PGBOUNCER}:6432"}
    assert on(PGBOUNCER, "systemctl is-active pgbouncer").stdout.strip() == "active"
    assert dns_answer() == [LB_ADDRESS]
    assert still_there(written) == len(written)
    # the Phase 1 origin keeps serving the API over HTTPS with its own certificate: the DNS rollback's target
    assert api("GET", "/health", at=BACKEND_1_ADDRESS)[0] == 200


def test_code_rollback_serves_v1_0_0_again_with_no_failed_request(written):
    client = LoadClient()
    run = play("rollback.yml", "-e", "rollback_parts=code")
    figures = client.finish()
    assert run.rc == 0, run.tail()
    assert set(served_releases().values()) == {"1.0.0"}
    assert {db_endpoint(b) for b in BACKENDS} == {f"{PGBOUNCER}:6432"}  # code only: still through PgBouncer
    assert figures["failed"] == 0, figures
    assert reports("rollback")[-1]["result"] == "PASS"
    record("rollback.yml code only (s)", round(run.seconds, 1))
    record("code rollback: client requests ok / failed", f"{figures['ok']} / {figures['failed']}")


def test_code_pgbouncer_dns_rollback_restores_the_phase_1_topology_and_keeps_every_row(written):
    # An incident is when the git remote is most likely down too: the rollback must not need it.
    git_server = GROUPS["lab_util"][0]
    on(git_server, "systemctl stop ywlab-git-daemon.service")
    try:
        # a client that asks the authoritative server before every request, as one whose cache expired
        client = LoadClient(follow_dns=True)
        run = play("rollback.yml", "-e", "rollback_parts=code,pgbouncer,dns")
        figures = client.finish()
    finally:
        on(git_server, "systemctl start ywlab-git-daemon.service")
    assert run.rc == 0, run.tail()
    assert set(served_releases().values()) == {"1.0.0"}
    assert {db_endpoint(b) for b in BACKENDS} == {f"{ALL_VARS['rollback_postgresql_host']}:5432"}
    state = on(PGBOUNCER, "systemctl show -P ActiveState pgbouncer; systemctl show -P UnitFileState pgbouncer")
    assert state.stdout.split() == ["inactive", "disabled"]
    assert dns_answer() == [BACKEND_1_ADDRESS]
    # where the name points now, the API answers over HTTPS with a certificate for the name (checked)
    assert api("GET", "/health/detailed", at=BACKEND_1_ADDRESS)[0] == 200
    assert still_there(written) == len(written)
    status, body = api("GET", "/api/messages?limit=100", token=login())
    assert status == 200 and {m["id"] for m in body["messages"]} >= set(written)
    assert figures["failed"] == 0, figures
    # it was served by the balancer, then by the origin once the name pointed there
    assert set(figures["addresses"]) == {LB_ADDRESS, BACKEND_1_ADDRESS}, figures["addresses"]
    report = reports("rollback")[-1]
    assert report["result"] == "PASS" and report["counts"]["fail"] == 0, report["items"]
    origin = {i["name"]: i for i in report["items"]}["API answers over HTTPS at the Phase 1 origin"]
    assert origin["status"] == "pass" and BACKEND_1_ADDRESS in origin["figure"], origin
    record("rollback.yml code + pgbouncer + dns (s)", round(run.seconds, 1))
    record("  the API over HTTPS at the Phase 1 origin", origin["figure"])
    record(
        "  a client following DNS: ok / failed, by address",
        f"{figures['ok']} / {figures['failed']}, {json.dumps(figures['addresses'], sort_keys=True)}",
    )
    record(
        "  of which pgbouncer / dns stages (s)",
        " / ".join(str(s["seconds"]) for s in report["stages"] if s["stage"] in ("pgbouncer", "dns")),
    )


def test_the_same_rollback_again_changes_nothing():
    run = play("rollback.yml", "-e", "rollback_parts=code,pgbouncer,dns")
    assert run.rc == 0 and run.changed == 0, run.recap


def test_database_rollback_with_a_wrong_confirmation_is_refused_and_changes_nothing(written):
    before = (psql("SELECT count(*), max(id) FROM messages"), dumps())
    run = play("rollback.yml", "-e", "rollback_parts=database", "-e", "rollback_database_confirm=appdb-please")
    assert run.rc != 0
    assert re.search(r"rollback_database_confirm", run.output) and DATABASE in run.output, run.tail()
    assert (psql("SELECT count(*), max(id) FROM messages"), dumps()) == before
    assert still_there(written) == len(written)


def test_database_rollback_restores_the_backup_after_a_safety_dump(written):
    point = json.loads(on(PGBOUNCER, f"cat {BACKUP_DIR}/rollback-point.json").stdout)
    dumps_before = dumps()
    run = play("rollback.yml", "-e", "rollback_parts=database", "-e", f"rollback_database_confirm={DATABASE}")
    assert run.rc == 0, run.tail()
    # the backup predates the rows written through the API: restoring it removes them...
    assert still_there(written) == 0
    assert psql("SELECT count(*) FROM church") == "2000"
    # ...and the safety dump taken first still has them
    new = sorted(dumps() - dumps_before)
    assert len(new) == 1 and new[0].startswith(f"{BACKUP_DIR}/safety/"), new
    data = on(PGBOUNCER, f"pg_restore --data-only --table=messages --file=- {new[0]}", timeout=60).stdout
    assert "before rollback 19" in data
    report = reports("rollback")[-1]
    restored = {i["name"]: i for i in report["items"]}["Database restored after a safety dump"]
    assert restored["status"] == "pass" and point["path"] in restored["figure"], restored
    assert set(served_releases().values()) == {"1.0.0"}  # the API still answers on the restored database
    record("rollback.yml database part (s)", round(run.seconds, 1))
