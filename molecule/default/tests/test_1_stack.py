"""The stack site.yml converged, checked from outside the playbooks: verify.yml and its report,
then each tier as a user of it sees it."""

import json
import os
import re
import time

import pytest
from stacklab import (
    ALL_VARS,
    BACKENDS,
    CLIENT,
    DOMAIN,
    GROUPS,
    LB,
    REPORTS,
    LoadClient,
    dns_answer,
    env_of,
    on,
    play,
    record,
    reports,
)

PGBOUNCER = GROUPS["pgbouncer"][0]
DB = GROUPS["postgresql"][0]
CHECKLIST = [
    "PgBouncer deployed and pooling (pgbouncer-1)",
    "All backend servers healthy (every health endpoint, directly)",
    "Health checks pass through NGINX over HTTPS (lb-1)",
    "NGINX load balancer distributing traffic to all backends (lb-1)",
    "TLS certificate valid for at least 30 days (lb-1)",
    "Smoke test: login answers without a server error",
    "Smoke test: a message is created through the API",
    "Distributed locks prevent duplicate job execution",
    "All backends run the same commit",
]


def test_converge_and_idempotence_each_wrote_a_passing_deploy_report():
    # site.yml ends with verify.yml, which writes a report per run: converge's and idempotence's.
    runs = reports("deploy")
    assert len(runs) >= 2, runs
    converge, rerun = runs[-2], runs[-1]
    assert converge["result"] == "PASS" and rerun["result"] == "PASS", (converge["items"], rerun["items"])
    stages = [s["stage"] for s in converge["stages"]]
    assert stages[:3] == ["preflight", "backup", "pgbouncer"] and "tls" in stages, stages
    # the lab starts at Phase 1, the API name on backend-1 (lab_dns_records): site.yml moved it to the
    # balancer, confirmed at the authoritative server, before certbot ran
    assert ALL_VARS["lab_dns_records"][0]["address"] != ALL_VARS["site_dns_ipv4"][0]
    assert stages.index("dns") < stages.index("tls"), stages
    moved = {item["name"]: item for item in converge["items"]}["DNS points the API name at the balancers"]
    confirmed_at = ALL_VARS["dns_record_nsupdate_server"]
    assert moved["status"] == "pass", moved
    # and what the name answered before (the Phase 1 origin) with its TTL: how long resolvers may keep it
    origin = ALL_VARS["lab_dns_records"][0]["address"]
    now = f"{DOMAIN} -> {confirmed_at}: A {ALL_VARS['site_dns_ipv4'][0]}, AAAA none"
    assert moved["figure"].startswith(f"{now}; before: A {origin}, AAAA none, TTL "), moved
    assert dns_answer() == ALL_VARS["site_dns_ipv4"]
    record("fresh full-stack converge (site.yml, s)", converge["total_seconds"])
    record("no-op re-run (idempotence, s)", rerun["total_seconds"])
    for stage in converge["stages"]:
        record(f"  converge stage {stage['stage']} (s)", stage["seconds"])


def test_verify_playbook_alone_passes_every_checklist_item():
    run = play("playbooks/verify.yml")
    assert run.rc == 0 and run.failed == 0, run.tail()
    report = reports("deploy")[-1]
    status = {item["name"]: item["status"] for item in report["items"]}
    assert {name: status.get(name) for name in CHECKLIST} == {name: "pass" for name in CHECKLIST}
    assert set(status.values()) <= {"pass", "not_checked"}, status
    commits = {d["commit"] for d in report["deployed"]}
    assert len(commits) == 1 and len(report["deployed"]) == len(BACKENDS)
    assert report["backup"]["path"].endswith(".dump") and report["backup"]["size_bytes"] > 0
    record("verify.yml alone (s)", round(run.seconds, 1))
    with open(report_markdown(report), encoding="utf-8") as fh:
        print(fh.read())


def report_markdown(report):
    stamp = report["generated"].replace("-", "").replace(":", "")
    return os.path.join(REPORTS, f"deploy-{stamp}.md")


def test_a_client_calls_the_api_over_https_through_the_balancer_and_every_backend_answers():
    client = LoadClient()
    time.sleep(5)
    figures = client.finish()
    assert figures["failed"] == 0, figures
    assert set(figures["served_by"]) == set(BACKENDS), figures


def test_http_redirects_to_https_except_the_acme_path():
    lb = f"--resolve {DOMAIN}:80:$(getent hosts {LB} | cut -d' ' -f1)"
    head = on(CLIENT, f"curl -sI {lb} http://{DOMAIN}/api/messages").stdout
    assert re.search(r"^HTTP/1.1 301", head) and f"Location: https://{DOMAIN}/api/messages" in head, head
    acme = on(CLIENT, f"curl -s -o /dev/null -w '%{{http_code}}' {lb} http://{DOMAIN}/.well-known/acme-challenge/x")
    assert acme.stdout == "404"  # served from the webroot (nothing there), not redirected


def test_the_certificate_is_pebbles_and_certbot_renews_by_the_distribution_timer():
    issuer = on(LB, f"openssl x509 -in /etc/letsencrypt/live/{DOMAIN}/cert.pem -noout -issuer").stdout
    assert "Pebble Intermediate CA" in issuer, issuer
    assert on(LB, "systemctl is-enabled certbot.timer && systemctl is-active certbot.timer").stdout.split() == [
        "enabled",
        "active",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_reaches_postgresql_through_pgbouncer_and_runs_the_v1_1_0_commit(backend):
    env = env_of(backend)
    assert re.match(rf"postgres(ql)?://[^@]+@{PGBOUNCER}:6432/", env["DATABASE_URL"]), "DATABASE_URL not via PgBouncer"
    tag = on(CLIENT, "git -C /srv/git/sample-backend.git rev-parse 'v1.1.0^{commit}'").stdout.strip()
    assert on(backend, "cat /srv/ywm-api/current/REVISION").stdout.strip() == tag
    assert on(backend, "systemctl is-enabled ywm-api && systemctl is-active ywm-api").stdout.split() == [
        "enabled",
        "active",
    ]


def test_pgbouncer_pools_the_backends_connections_under_load():
    assert on(PGBOUNCER, "systemctl is-enabled pgbouncer && systemctl is-active pgbouncer").stdout.split() == [
        "enabled",
        "active",
    ]
    count = "ss -Htn state established '( {} )' | wc -l"
    clients = LoadClient("/health/detailed")  # every request asks PostgreSQL, through PgBouncer
    samples = []
    while len(samples) < 10:
        pair = on(PGBOUNCER, f"{count.format('sport = :6432')}; {count.format('dport = :5432')}").stdout.split()
        samples.append(tuple(map(int, pair)))
        time.sleep(0.5)
    figures = clients.finish()
    assert figures["failed"] == 0 and set(figures["served_by"]) == set(BACKENDS), figures
    peak_clients = max(pair[0] for pair in samples)
    peak_servers = max(pair[1] for pair in samples)
    # each busy backend holds its own connection to PgBouncer; PgBouncer stays within its pool
    assert peak_clients >= len(BACKENDS) and 1 <= peak_servers <= 35, samples
    record("PgBouncer client vs server connections (peak under load)", f"{peak_clients} vs {peak_servers}")


def test_phase_1_data_and_the_verified_backup_are_there():
    count = on(DB, "runuser -u postgres -- psql -tAc 'SELECT count(*) FROM church' appdb").stdout.strip()
    assert count == "2000"
    point = json.loads(on(PGBOUNCER, "cat /var/backups/ywmessaging-db/rollback-point.json").stdout)
    listing = on(PGBOUNCER, f"pg_restore --list {point['path']}").stdout
    assert "TABLE DATA public church" in listing
