"""The runbook's problem without PgBouncer, auth_query's lookup function, and the role's safety nets.

Runs once (on the database host's entry): these tests drive clients and Ansible from the controller.
"""

import os
import re
import tempfile

import labkit
import yaml
from pgblab import (
    DB_HOST,
    LAB,
    PGBOUNCER_HOSTS,
    ansible_module,
    json_env,
    pg_superuser,
    pgbench,
    psql,
    settle_pgbouncer_servers,
    task_results,
)

testinfra_hosts = [DB_HOST]


def test_300_clients_straight_at_postgresql_fail_with_too_many_clients():
    """The runbook's problem: max_connections = 100 cannot take 300 application connections."""
    settle_pgbouncer_servers()
    assert pg_superuser("SHOW max_connections").stdout.strip() == "100"
    run = pgbench(DB_HOST, clients=300, seconds=3, port=5432, jobs=1)
    assert run["rc"] != 0, run["output"]
    # SQLSTATE 53300 too_many_connections: "sorry, too many clients already" once all 100 slots are
    # taken, or (first, for a non-superuser) "remaining connection slots are reserved ..." once only
    # superuser_reserved_connections are left.
    assert re.search(
        r"FATAL:  (sorry, too many clients already|remaining connection slots are reserved)", run["output"]
    ), run["output"]
    # pgbench opens its clients one after the other (one thread): PostgreSQL took about 97 of them.
    refused = re.search(r"could not create connection for client (\d+)", run["output"])
    assert refused and 90 <= int(refused.group(1)) <= 100, run["output"]


def test_auth_query_function_returns_only_live_non_superuser_logins():
    """pgbouncer-trixie's lookup function on the primary (created by the role)."""
    auth = {"user": "pgbouncer_auth", "password": LAB["lab_pgbouncer_auth_password"], "port": 5432}
    lookup = "SELECT usename, passwd LIKE 'SCRAM-SHA-256$%%' FROM pgbouncer.get_auth('%s')"
    app = psql(DB_HOST, lookup % "app", **auth)
    assert (app.returncode, app.stdout.strip()) == (0, "app|t"), app.stderr
    for user in ("app_expired", "postgres", "nobody"):
        result = psql(DB_HOST, lookup % user, **auth)
        assert (result.returncode, result.stdout.strip()) == (0, ""), (user, result.stderr)
    # Only the auth user may call it, and the auth user cannot read pg_authid itself.
    by_app = psql(DB_HOST, lookup % "app", port=5432)
    assert "permission denied" in by_app.stderr, by_app.stderr
    direct = psql(DB_HOST, "SELECT rolpassword FROM pg_authid", **auth)
    assert "permission denied" in direct.stderr, direct.stderr
    definition = pg_superuser(
        "SELECT prosecdef, proconfig FROM pg_proc"
        " WHERE proname = 'get_auth' AND pronamespace = 'pgbouncer'::regnamespace"
    ).stdout.strip()
    assert definition == 't|{"search_path=pg_catalog, pg_temp"}'


def test_an_expired_password_cannot_log_in_through_auth_query():
    password = "lab-expired-password"  # noqa: S105 - lab value, see inventory/group_vars/postgresql.yml
    expired = psql("pgbouncer-trixie", "SELECT 1", user="app_expired", password=password)
    assert expired.returncode != 0
    assert "no such user" in expired.stderr, expired.stderr


def test_an_impossible_threshold_fails_and_names_the_violation():
    """Fewer than 0 waiting clients cannot be: the module must fail and say what it measured."""
    name = "pgbouncer-bookworm"
    args = {
        "login_host": "127.0.0.1",
        "login_user": "pgbouncer_stats",
        "login_password": LAB["lab_pgbouncer_stats_password"],
        "thresholds": {"databases": ["appdb"], "max_clients_waiting": -1, "min_reuse_ratio": 90},
    }
    stats = ansible_module(name, "ywmessaging.scaling.pgbouncer_stats", args)[name]
    assert stats.get("failed") is True
    assert stats["derived"]["appdb"]["clients_waiting"] == 0
    assert stats["msg"] == (
        "1 PgBouncer threshold violated: max_clients_waiting (database=appdb): measured 0, limit <= -1"
    )
    assert {c["name"]: c["status"] for c in stats["checks"]} == {
        "min_reuse_ratio": "passed",
        "max_clients_waiting": "failed",
    }


def _secrets_on_hosts():
    """Every secret the run could leak: lab passwords and each verifier's keys from the auth files."""
    secrets = {value for key, value in LAB.items() if "password" in key or "seed" in key}
    for name in PGBOUNCER_HOSTS:
        content = labkit.docker_exec(name, "cat /etc/pgbouncer/userlist.txt", sh="bash").stdout
        for verifier in re.findall(r"SCRAM-SHA-256\$[^\"]+", content):
            secrets.update(part for part in re.split(r"[$:]", verifier) if len(part) > 20)
            secrets.add(verifier)
    return secrets


def test_check_diff_on_the_converged_hosts_changes_nothing_and_shows_no_secret():
    run = labkit.play("converge.yml", "--check", "--diff", timeout=600)
    output = run.output
    assert run.rc == 0, output
    hosts = run.recap
    assert set(hosts) == set(PGBOUNCER_HOSTS), output
    for name in PGBOUNCER_HOSTS:
        assert (hosts[name]["changed"], hosts[name]["failed"]) == (0, 0), output
    leaked = [s for s in _secrets_on_hosts() if s in output]
    assert leaked == [], "secrets in --check --diff output"


# One play per bad input, each in check mode (nothing could change even if validation let it through).
BAD_INPUTS = {
    "empty databases": ({"pgbouncer_databases": []}, "pgbouncer_databases is empty"),
    "unknown pool mode": ({"pgbouncer_pool_mode": "sometimes"}, "pgbouncer_pool_mode"),
    "unknown pool mode of a database": (
        {"pgbouncer_databases": [{"name": "appdb", "host": "pgbouncer-db", "pool_mode": "sometimes"}]},
        "pool_mode",
    ),
    "missing password": (
        {"pgbouncer_users": [{"name": "app"}], "pgbouncer_admin_users": [], "pgbouncer_stats_users": []},
        "pgbouncer_users[0] (app): password is missing",
    ),
    "empty password from vault": (
        {
            "pgbouncer_users": [{"name": "app", "password": ""}],
            "pgbouncer_admin_users": [],
            "pgbouncer_stats_users": [],
        },
        "pgbouncer_users[0] (app): password is missing",
    ),
    "non-numeric default pool size": ({"pgbouncer_default_pool_size": "thirty"}, "pgbouncer_default_pool_size"),
    "non-numeric pool size of a database": (
        {"pgbouncer_databases": [{"name": "appdb", "host": "pgbouncer-db", "pool_size": "lots"}]},
        "pool_size",
    ),
    "pools larger than max_connections": (
        {"pgbouncer_default_pool_size": 95},
        "more than the 97 PostgreSQL allows (pgbouncer_postgresql_max_connections 100",
    ),
    "computed verifiers without a salt seed": ({"pgbouncer_scram_salt_seed": ""}, "pgbouncer_scram_salt_seed is empty"),
    "console user without a password": (
        {"pgbouncer_stats_users": ["nobody"]},
        "authenticates from the auth file only): nobody",
    ),
    "auth_query without a connection cap": (
        {"pgbouncer_auth_query_enabled": True, "pgbouncer_auth_user_password": "x", "pgbouncer_max_db_connections": 0},
        "set pgbouncer_max_db_connections",
    ),
}


def _validation_playbook():
    plays = []
    for case, (variables, _expected) in BAD_INPUTS.items():
        plays.append(
            {
                "name": case,
                "hosts": "pgbouncer-bookworm",
                "gather_facts": False,
                "tasks": [
                    {
                        "block": [
                            {
                                "ansible.builtin.include_role": {"name": "ywmessaging.scaling.pgbouncer"},
                                "vars": variables,
                            },
                            {"ansible.builtin.set_fact": {"outcome": "ACCEPTED"}},
                        ],
                        "rescue": [
                            {"ansible.builtin.set_fact": {"outcome": "{{ ansible_failed_result.msg }}"}},
                        ],
                    },
                    {"name": "outcome", "ansible.builtin.debug": {"msg": {"case": case, "outcome": "{{ outcome }}"}}},
                ],
            }
        )
    return plays


def test_bad_input_fails_naming_the_variable_before_any_host_is_touched():
    name = "pgbouncer-bookworm"
    before = labkit.docker_exec(name, "md5sum /etc/pgbouncer/*; systemctl show -p MainPID pgbouncer", sh="bash").stdout
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=os.path.dirname(__file__), delete=False) as fh:
        yaml.safe_dump(_validation_playbook(), fh, sort_keys=False)
        playbook = fh.name
    try:
        run = labkit.play(playbook, "--check", timeout=600, env=json_env())
    finally:
        os.unlink(playbook)
    outcomes = {}
    for task, result in task_results(run)[name]:
        if task == "outcome":
            outcomes[result["msg"]["case"]] = result["msg"]["outcome"]
    assert set(outcomes) == set(BAD_INPUTS)
    for case, (_variables, expected) in BAD_INPUTS.items():
        assert expected in outcomes[case], "%s: %s" % (case, outcomes[case])
    after = labkit.docker_exec(name, "md5sum /etc/pgbouncer/*; systemctl show -p MainPID pgbouncer", sh="bash").stdout
    assert after == before
