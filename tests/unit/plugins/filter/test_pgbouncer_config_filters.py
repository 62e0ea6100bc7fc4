# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters the pgbouncer role builds its auth file, pool budget and reload/restart decision with."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter import pgbouncer_config as f
from ansible_collections.ywmessaging.scaling.plugins.module_utils import pg_secrets
from ansible_collections.ywmessaging.scaling.plugins.module_utils import pgbouncer as pgb


def test_filters_are_registered():
    assert set(f.FilterModule().filters()) == {
        "pgbouncer_userlist",
        "pgbouncer_pool_plan",
        "pgbouncer_settings_diff",
    }


def test_userlist_computes_scram_keeps_verifiers_and_writes_plaintext_only_when_asked():
    existing = pg_secrets.deterministic_scram_verifier("ro-pw", "app_ro", "other-seed")
    text = f.pgbouncer_userlist(
        [
            {"name": "app", "password": "app-pw"},
            {"name": "app_ro", "verifier": existing},
            {"name": "pgbouncer_auth", "password": "auth-pw", "plaintext": True},
            {"name": 'we"ird', "password": "w-pw"},
        ],
        "scram-sha-256",
        salt_seed="seed",
    )
    lines = text.splitlines()
    assert lines[0] == '"app" "%s"' % pg_secrets.deterministic_scram_verifier("app-pw", "app", "seed")
    assert lines[1] == '"app_ro" "%s"' % existing
    assert lines[2] == '"pgbouncer_auth" "auth-pw"'
    assert lines[3].startswith('"we""ird" "SCRAM-SHA-256$4096:')
    assert "app-pw" not in text and "w-pw" not in text


def test_userlist_md5():
    text = f.pgbouncer_userlist([{"name": "app", "password": "pw"}], "md5")
    assert text == '"app" "%s"\n' % pg_secrets.md5_secret("pw", "app")


@pytest.mark.parametrize(
    "users, auth_type, message",
    [
        ([{"name": "app"}], "scram-sha-256", "user app has neither password nor verifier"),
        ([{"name": "app", "password": "a"}, {"name": "app", "password": "b"}], "md5", "listed twice"),
        ([{"name": "app", "verifier": "md5" + "0" * 32}], "scram-sha-256", "auth_type scram-sha-256 cannot use"),
        ([{"name": "app", "verifier": "not-a-verifier"}], "md5", "neither a SCRAM-SHA-256 verifier nor an md5 hash"),
        ([{"name": "app", "password": "pw"}], "scram-sha-256", "salt_seed"),
        ([{"name": "app", "password": "pw"}], "trust", "auth_type must be one of"),
    ],
)
def test_userlist_rejects_bad_entries_naming_the_user(users, auth_type, message):
    with pytest.raises(AnsibleFilterError) as err:
        f.pgbouncer_userlist(users, auth_type)
    assert message in str(err.value)
    assert "not-a-verifier" not in str(err.value)


def test_pool_plan_multiplies_pools_by_users_and_honours_caps():
    databases = [
        {"name": "appdb"},
        {"name": "reports", "dbname": "warehouse", "pool_size": 10, "reserve_pool": 0},
        {"name": "capped", "max_db_connections": 12},
    ]
    plan = f.pgbouncer_pool_plan(databases, 30, 5, 0, 2)
    by_name = {db["name"]: db for db in plan["databases"]}
    assert by_name["appdb"]["server_connections"] == 70  # (30 + 5) x 2 users
    assert by_name["reports"]["server_connections"] == 20
    assert by_name["reports"]["dbname"] == "warehouse"
    assert by_name["capped"]["server_connections"] == 12
    assert plan["server_connections"] == 102


def test_pool_plan_with_unknown_users_needs_a_cap():
    unbounded = f.pgbouncer_pool_plan([{"name": "appdb"}], 30, 5, 0, -1)
    assert unbounded["server_connections"] is None
    capped = f.pgbouncer_pool_plan([{"name": "appdb"}], 30, 5, 40, -1)
    assert capped["server_connections"] == 40


def test_pool_plan_rejects_non_numbers():
    with pytest.raises(AnsibleFilterError) as err:
        f.pgbouncer_pool_plan([{"name": "appdb", "pool_size": "lots"}], 30, 5)
    assert "pool_size of database appdb" in str(err.value)


# SHOW CONFIG as the pgbouncer_stats module returns it (show: [config]): psycopg2 hands over text,
# the module's reader types it (numbers become ints, "0777"-like values and names stay text).
SHOW_CONFIG_COLUMNS = [("key",), ("value",), ("default",), ("changeable",)]
SHOW_CONFIG = pgb.rows_to_dicts(
    SHOW_CONFIG_COLUMNS,
    [
        ("listen_addr", "10.0.0.5,127.0.0.1", "", "no"),
        ("listen_port", "6432", "6432", "no"),
        ("unix_socket_mode", "511", "511", "no"),
        ("so_reuseport", "0", "0", "no"),
        ("default_pool_size", "30", "20", "yes"),
        ("reserve_pool_timeout", "1.5", "5", "yes"),
        ("auth_query", "SELECT usename, passwd FROM pgbouncer.get_auth($1)", "SELECT ...", "yes"),
    ],
)


def test_settings_diff_reports_only_real_differences():
    wanted = {
        "listen_addr": "10.0.0.5,127.0.0.1",
        "listen_port": 6432,
        "unix_socket_mode": "0777",
        "default_pool_size": "30",
        "reserve_pool_timeout": "1.50",
        "auth_query": "SELECT usename, passwd FROM pgbouncer.get_auth($1)",
    }
    assert SHOW_CONFIG[1]["value"] == 6432 and SHOW_CONFIG[0]["key"] == "listen_addr"  # typed by the reader
    assert f.pgbouncer_settings_diff(SHOW_CONFIG, wanted) == []
    assert f.pgbouncer_settings_diff(SHOW_CONFIG, dict(wanted, listen_port=6433)) == ["listen_port"]
    assert f.pgbouncer_settings_diff(SHOW_CONFIG, dict(wanted, default_pool_size=40), ["listen_port"]) == []


def test_settings_diff_expects_defaults_for_settings_not_given_and_ignores_unknown_keys():
    wanted = {"listen_addr": "10.0.0.5,127.0.0.1", "so_reuseport": True, "track_extra_parameters": "x"}
    keys = ["listen_addr", "so_reuseport", "track_extra_parameters", "unix_socket_mode"]
    assert f.pgbouncer_settings_diff(SHOW_CONFIG, wanted, keys) == ["so_reuseport"]
    assert f.pgbouncer_settings_diff(SHOW_CONFIG, dict(wanted, reserve_pool_timeout=2), ["reserve_pool_timeout"]) == [
        "reserve_pool_timeout"
    ]


@pytest.mark.parametrize("current", [[], "", None, "listen_port\x1f6432\x1f6432\x1fno", {"config": []}, [("a", 1)]])
def test_settings_diff_needs_show_config_rows(current):
    with pytest.raises(AnsibleFilterError) as err:
        f.pgbouncer_settings_diff(current, {"listen_port": 6432})
    assert "SHOW CONFIG rows" in str(err.value)
