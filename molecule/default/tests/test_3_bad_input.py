"""Bad input against the converged stack: every case stops site.yml or rollback.yml in its first
stage (playbooks/validate.yml), with a message naming the variable, before any host is changed -
the managed files of every tier and the main PID of every service are the same afterwards."""

import json

import pytest
from stacklab import managed_state, play, record

# (id, playbook, extra vars, what the message must name). One class of bad input per case, over every
# role site.yml composes and both playbooks' own variables.
CASES = [
    # pgbouncer
    ("pgbouncer port out of range", "site.yml", {"pgbouncer_listen_port": 70000}, "pgbouncer_listen_port"),
    ("pgbouncer port not a number", "site.yml", {"pgbouncer_listen_port": "sixty"}, "pgbouncer_listen_port"),
    ("pgbouncer address not on the host", "site.yml", {"pgbouncer_listen_addr": "192.0.2.77"}, "pgbouncer_listen_addr"),
    (
        "pgbouncer.ini injection through a database host",
        "site.yml",
        {"pgbouncer_databases": [{"name": "appdb", "host": "db\nauth_type = trust", "port": 5432}]},
        "pgbouncer_databases",
    ),
    (
        "pgbouncer extra setting overriding what the role owns",
        "site.yml",
        {"pgbouncer_extra_settings": {"auth_type": "trust"}},
        "pgbouncer_extra_settings",
    ),
    ("pgbouncer pool size zero", "site.yml", {"pgbouncer_default_pool_size": 0}, "pgbouncer_default_pool_size"),
    # nginx_lb
    (
        "nginx directive injection through server_name",
        "site.yml",
        {"nginx_lb_server_name": "api.ywlab.test; return 200 owned"},
        "nginx_lb_server_name",
    ),
    (
        "nginx server_name with a newline",
        "site.yml",
        {"nginx_lb_server_name": "api.ywlab.test\nlisten 81"},
        "nginx_lb_server_name",
    ),  # noqa: E501
    (
        "nginx size that is not a size",
        "site.yml",
        {"nginx_lb_client_max_body_size": "10 MB;"},
        "nginx_lb_client_max_body_size",
    ),  # noqa: E501
    ("nginx upstream name with a brace", "site.yml", {"nginx_lb_upstream_name": "api{"}, "nginx_lb_upstream_name"),
    # backend_node
    (
        "DATABASE_URL host smuggling a path",
        "site.yml",
        {"backend_node_db_host": "evil@db/other"},
        "backend_node_db_host",
    ),  # noqa: E501
    ("environment variable name", "site.yml", {"backend_node_env": {"BAD-NAME": "1"}}, "backend_node_env"),
    (
        "environment value with a newline",
        "site.yml",
        {"backend_node_env": {"MODE": "a\nNODE_OPTIONS=--inspect"}},
        "backend_node_env",
    ),  # noqa: E501
    ("service name with a space", "site.yml", {"backend_node_service_name": "ywm api"}, "backend_node_service_name"),
    # certbot
    ("certbot contact e-mail", "site.yml", {"certbot_contact_email": "ops at example"}, "certbot_contact_email"),
    ("certbot terms not agreed", "site.yml", {"certbot_agree_tos": False}, "certbot_agree_tos"),
    # pg_backup
    ("backups to keep below one", "site.yml", {"pg_backup_keep": 0}, "pg_backup_keep"),
    ("backup directory relative", "site.yml", {"pg_backup_dir": "backups"}, "pg_backup_dir"),
    # site.yml / verify.yml's own variables
    ("api_domain not a DNS name", "site.yml", {"api_domain": "api example"}, "api_domain"),
    ("verify certificate days zero", "site.yml", {"verify_cert_min_days": 0}, "verify_cert_min_days"),
    # rollback.yml
    ("rollback unknown part", "rollback.yml", {"rollback_parts": "code,everything"}, "rollback_parts"),
    (
        "rollback DNS target not an address",
        "rollback.yml",
        {"rollback_parts": "dns", "rollback_dns_target": "backend-1"},
        "rollback_dns_target",
    ),
    (
        "rollback PostgreSQL port out of range",
        "rollback.yml",
        {"rollback_parts": "pgbouncer", "rollback_postgresql_port": 0},
        "rollback_postgresql_port",
    ),
    (
        "rollback database without the confirmation",
        "rollback.yml",
        {"rollback_parts": "database", "rollback_database_confirm": "yes"},
        "rollback_database_confirm",
    ),
    (
        "rollback code with a bad role variable",
        "rollback.yml",
        {"rollback_parts": "code", "backend_node_port": 0},
        "backend_node_port",
    ),  # noqa: E501
]


def summary(run):
    """The one message validate.yml stops with."""
    return run.output[run.output.index("input problem(s), found before any host was changed") :]


@pytest.fixture(scope="module")
def before():
    return managed_state()


@pytest.mark.parametrize("playbook, extra, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_stops_before_any_host_changes_naming_the_variable(before, playbook, extra, names):
    run = play(playbook, "-e", json.dumps(extra))
    assert run.rc != 0, run.tail()
    assert "input problem(s), found before any host was changed" in run.output, run.tail()
    assert names in summary(run), run.tail()
    # the validation play was the last one that started (rollback.yml marks its report first)
    plays = [line for line in run.output.splitlines() if line.startswith("PLAY [")]
    assert plays[-1].startswith("PLAY [Validate"), run.tail()
    assert managed_state() == before


def test_several_bad_values_are_named_in_one_message_and_nothing_changes(before):
    extra = {
        "api_domain": "not a name",
        "pgbouncer_listen_port": 70000,
        "nginx_lb_server_name": "a;b",
        "backend_node_service_name": "a b",
        "backend_node_db_pool_max": 0,
        "certbot_contact_email": "nobody",
        "pg_backup_keep": 0,
        "verify_distribution_tolerance": 1,
    }
    run = play("site.yml", "-e", json.dumps(extra))
    assert run.rc != 0
    text = summary(run)
    missing = [name for name in extra if name not in text]
    assert not missing, f"not named: {missing}\n{text}"
    assert managed_state() == before
    record("bad input: one refused site.yml run (s)", round(run.seconds, 1))
