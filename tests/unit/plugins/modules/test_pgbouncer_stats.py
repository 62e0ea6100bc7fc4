# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgbouncer_stats module end to end, with psycopg2 replaced by a replay of real consoles."""

import importlib.util
import json
import os

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pgbouncer as pgb
from ansible_collections.ywmessaging.scaling.plugins.modules import pgbouncer_stats

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "pgbouncer")
_spec = importlib.util.spec_from_file_location("pgbouncer_fake_console", os.path.join(FIXTURES, "fake_console.py"))
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)

BASE_ARGS = {"login_host": "127.0.0.1", "port": 6452, "login_user": "pgb_admin", "login_password": "secret"}


class ModuleExit(Exception):
    def __init__(self, failed, result):
        super(ModuleExit, self).__init__(result.get("msg"))
        self.failed = failed
        self.result = result


def _exit_json(self, **kwargs):
    raise ModuleExit(False, kwargs)


def _fail_json(self, **kwargs):
    raise ModuleExit(True, kwargs)


@pytest.fixture(autouse=True)
def capture_exit(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)


def run(monkeypatch, args, capture=None, driver=None):
    driver = driver or fake.FakeDriver(fake.load(capture))
    monkeypatch.setattr(pgb, "psycopg2", driver)
    with patch_module_args(dict(BASE_ARGS, **args)), pytest.raises(ModuleExit) as info:
        pgbouncer_stats.main()
    return info.value, driver


def test_default_run_returns_five_shows_and_figures(monkeypatch):
    out, driver = run(monkeypatch, {}, "pgbouncer-1.18.0-under-load.json")
    assert not out.failed
    result = out.result
    assert result["changed"] is False
    assert result["version"] == "PgBouncer 1.18.0"
    for key in ("stats", "pools", "clients", "servers", "databases"):
        assert isinstance(result[key], list) and result[key], key
    assert "config" not in result and "users" not in result and "checks" not in result
    assert result["derived"]["appdb"]["reuse_ratio"] == 99.99
    assert result["derived"]["appdb"]["clients_waiting"] == 4
    # only SHOW commands, in autocommit, and the connection is closed
    conn = driver.connection
    assert all(sql.startswith("SHOW ") for sql in conn.executed)
    assert conn.autocommit is True and conn.closed is True
    json.dumps(result)  # everything is plain JSON (no Decimal)


def test_show_selects_output_but_figures_still_computed(monkeypatch):
    out, driver = run(monkeypatch, {"show": ["config"]}, "pgbouncer-1.24.1-under-load.json")
    result = out.result
    assert "stats" not in result and "pools" not in result
    config = dict((r["key"], r["value"]) for r in result["config"])
    assert config["default_pool_size"] == 30
    assert result["derived"]["appdb"]["pools"][0]["pool_size"] == 15
    assert "SHOW USERS" in driver.connection.executed


def test_thresholds_passing_list_checks(monkeypatch):
    args = {"thresholds": {"min_reuse_ratio": 90, "max_avg_query_time_ms": 50, "max_pool_utilization": 90}}
    out = run(monkeypatch, args, "pgbouncer-1.18.0-after-load.json")[0]
    assert not out.failed
    assert out.result["msg"] == "3 PgBouncer threshold check(s) passed, 0 skipped"
    checks = dict((c["name"], c) for c in out.result["checks"])
    assert checks["min_reuse_ratio"]["measured"] == 99.99 and checks["min_reuse_ratio"]["limit"] == 90.0
    assert checks["max_pool_utilization"]["user"] == "app_user"
    assert all(c["status"] == "passed" for c in checks.values())


def test_thresholds_violated_fail_with_one_message_and_full_data(monkeypatch):
    args = {
        "thresholds": {
            "min_reuse_ratio": 90,
            "max_avg_query_time_ms": 50,
            "max_avg_wait_time_ms": 10,
            "max_pool_utilization": 90,
            "max_clients_waiting": 0,
            "max_maxwait_ms": 1,
        }
    }
    out = run(monkeypatch, args, "pgbouncer-1.24.1-under-load.json")[0]
    assert out.failed
    msg = out.result["msg"]
    assert msg.startswith("3 PgBouncer thresholds violated: ")
    assert "max_clients_waiting (database=appdb): measured 13, limit <= 0" in msg
    assert "max_maxwait_ms (database=appdb): measured 1.118, limit <= 1.0" in msg
    assert "max_pool_utilization (database=appdb, user=app_user): measured 100.0, limit <= 90.0" in msg
    assert out.result["changed"] is False
    assert out.result["stats"] and out.result["derived"]["appdb"]["transactions"] == 148698
    assert len(out.result["checks"]) == 6  # five per-database checks + one per pool


def test_unknown_threshold_option_is_rejected(monkeypatch):
    out = run(monkeypatch, {"thresholds": {"min_reuse_ratoi": 90}}, "pgbouncer-1.18.0-after-load.json")[0]
    assert out.failed
    assert "min_reuse_ratoi" in out.result["msg"]


def test_check_mode_reads_the_same(monkeypatch):
    out = run(monkeypatch, {"_ansible_check_mode": True}, "pgbouncer-1.18.0-after-load.json")[0]
    assert not out.failed
    assert out.result["changed"] is False
    assert out.result["derived"]["appdb"]["transactions"] == 310150


def test_connection_refused_fails_clearly_without_password(monkeypatch):
    driver = fake.FakeDriver(connect_error="FATAL:  not allowed")
    out = run(monkeypatch, {"login_user": "app_user"}, driver=driver)[0]
    assert out.failed
    assert "as user app_user: FATAL:  not allowed" in out.result["msg"]
    assert "admin_users or stats_users" in out.result["msg"]
    assert "secret" not in json.dumps(out.result)


def test_console_error_while_reading_fails(monkeypatch):
    driver = fake.FakeDriver(fake.load("pgbouncer-1.18.0-under-load.json"), fail_on=["pools"])
    out = run(monkeypatch, {}, driver=driver)[0]
    assert out.failed
    assert out.result["msg"].startswith("Reading PgBouncer admin console pgbouncer")
    assert "SHOW POOLS failed" in out.result["msg"]
    assert driver.connection.closed is True


def test_missing_psycopg2(monkeypatch):
    monkeypatch.setattr(pgb, "HAS_PSYCOPG2", False)
    with patch_module_args(BASE_ARGS), pytest.raises(ModuleExit) as info:
        pgbouncer_stats.main()
    assert info.value.failed
    assert "psycopg2" in info.value.result["msg"]


def test_password_is_no_log():
    spec = pgbouncer_stats.argument_spec()
    assert spec["login_password"]["no_log"] is True


def _compare_options(doc_options, spec, where):
    assert sorted(doc_options) == sorted(spec), where
    for name, opt in spec.items():
        doc = doc_options[name]
        assert doc.get("type", "str") == opt.get("type", "str"), (where, name)
        assert doc.get("default") == opt.get("default"), (where, name)
        assert doc.get("choices") == opt.get("choices"), (where, name)
        assert sorted(doc.get("aliases", [])) == sorted(opt.get("aliases", [])), (where, name)
        assert doc.get("elements") == opt.get("elements"), (where, name)
        if "options" in opt:
            _compare_options(doc.get("suboptions", {}), opt["options"], "%s.%s" % (where, name))


def test_documentation_matches_argument_spec():
    import yaml

    doc = yaml.safe_load(pgbouncer_stats.DOCUMENTATION)
    _compare_options(doc["options"], pgbouncer_stats.argument_spec(), "options")
    assert documented_attributes(doc)["check_mode"]["support"] == "full"
    returned = yaml.safe_load(pgbouncer_stats.RETURN)
    for key in ("version", "derived", "checks", "msg") + tuple(pgb.SHOW_COMMANDS):
        assert key in returned, key
    figure_keys = set(returned["derived"]["contains"])
    sample = returned["derived"]["sample"]["app"]
    assert set(sample) == figure_keys
    assert set(sample["pools"][0]) == set(returned["derived"]["contains"]["pools"]["contains"])


def test_returned_figures_are_the_documented_ones(monkeypatch):
    import yaml

    documented = yaml.safe_load(pgbouncer_stats.RETURN)["derived"]["contains"]
    for capture in ("pgbouncer-1.18.0-under-load.json", "pgbouncer-1.24.1-under-load.json"):
        out = run(monkeypatch, {}, capture)[0]
        figures = out.result["derived"]["appdb"]
        assert set(figures) == set(documented), capture
        assert set(figures["pools"][0]) == set(documented["pools"]["contains"]), capture


def documented_attributes(doc):
    """The module's attributes, including those it takes from the collection's doc fragment."""
    import yaml

    from ansible_collections.ywmessaging.scaling.plugins.doc_fragments.read_only import ModuleDocFragment

    attributes = dict(doc.get("attributes", {}))
    if "ywmessaging.scaling.read_only" in doc.get("extends_documentation_fragment", []):
        attributes.update(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["attributes"])
    return attributes
