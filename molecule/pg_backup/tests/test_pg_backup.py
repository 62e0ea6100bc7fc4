"""The database rollback point: verified before it is trusted, reused on re-runs, restored only
when the operator confirms with the database's name, and never without a safety dump."""

import json

import labkit
import pytest

testinfra_hosts = ["pg_backup-runner"]

BACKUPS = "/var/backups/ywmessaging-db"
DB = "pg_backup-db"


def drill(*extra, verbose=False):
    """Run one entry point of the role the way an operator would, with Molecule's inventory."""
    args = ["-vvv"] if verbose else []
    args += [arg for item in extra for arg in ("-e", item)]
    return labkit.play("drill.yml", *args, timeout=300)


def psql(sql):
    """A query on the database host as postgres: the unaligned, tuples-only result."""
    return labkit.docker_exec(DB, ["runuser", "-u", "postgres", "--", "psql", "-tA", "appdb", "-c", sql]).stdout


def message_count():
    return int(psql("SELECT count(*) FROM messages").strip())


def rollback_point(host):
    return json.loads(host.file(f"{BACKUPS}/rollback-point.json").content_string)


def test_the_rollback_point_is_a_verified_dump_only_root_can_read(host):
    assert host.file(BACKUPS).mode == 0o700
    record = host.file(f"{BACKUPS}/rollback-point.json")
    assert record.mode == 0o600
    point = rollback_point(host)
    dump = host.file(point["path"])
    assert dump.exists and dump.user == "root"
    assert point["database"] == "appdb"
    assert int(point["size_bytes"]) == dump.size >= 4096
    toc = host.run(f"pg_restore --list {point['path']}")
    assert toc.rc == 0
    assert "TABLE DATA public messages" in toc.stdout
    assert dump.sha256sum == point["sha256"]


def test_a_rerun_keeps_the_pre_deployment_rollback_point(host):
    # converge + idempotence ran the role twice: one dump only.
    dumps = host.run(f"ls {BACKUPS}/appdb-*.dump").stdout.split()
    assert dumps == [rollback_point(host)["path"]]
    assert not host.file(f"{BACKUPS}/.pgpass").exists


def test_a_dump_below_the_minimum_size_fails_and_is_not_kept(host):
    before = rollback_point(host)
    run = drill("pg_backup_drill=main", "pg_backup_force=true", "pg_backup_min_size_bytes=1000000000")
    assert run.rc != 0
    assert "below pg_backup_min_size_bytes" in run.stdout
    assert rollback_point(host) == before
    assert host.run(f"ls -a {BACKUPS}").stdout.count(".partial") == 0
    assert not host.file(f"{BACKUPS}/.pgpass").exists


def test_missing_password_fails_naming_the_variable(host):
    run = drill("pg_backup_drill=main", "pg_backup_db_password=", "pg_backup_force=true")
    assert run.rc != 0
    assert "pg_backup_db_password" in run.stdout


def test_restore_refuses_without_the_database_name_and_changes_nothing(host):
    count = message_count()
    run = drill("pg_backup_drill=restore", "pg_backup_restore_confirm=yes")
    assert run.rc != 0
    assert "Refusing to restore into appdb" in run.stdout
    assert run.changed == 0, run.recap
    assert message_count() == count
    assert not host.file(f"{BACKUPS}/safety").exists


def test_confirmed_restore_brings_the_data_back_and_leaves_a_safety_dump(host):
    assert message_count() == 500
    psql("DELETE FROM messages WHERE id > 100")
    assert message_count() == 100
    run = drill("pg_backup_drill=restore", "pg_backup_restore_confirm=appdb")
    assert run.rc == 0, run.output
    assert message_count() == 500
    safety = host.run(f"ls {BACKUPS}/safety/").stdout.split()
    assert len(safety) == 1
    # The safety dump holds the state just before the restore (100 rows).
    data = host.run(f"pg_restore --data-only --table=messages --file=- {BACKUPS}/safety/{safety[0]}").stdout
    lines = [line for line in data.splitlines() if line.split("\t")[0].isdigit()]
    assert len(lines) == 100
    assert "lab-app-password" not in run.output


@pytest.mark.parametrize("entry", ["main", "restore"])
def test_no_password_in_any_output_even_at_vvv(host, entry):
    # A forced backup and a confirmed restore: every task that handles the password runs.
    run = drill(f"pg_backup_drill={entry}", "pg_backup_force=true", "pg_backup_restore_confirm=appdb", verbose=True)
    assert run.rc == 0, run.tail(3000)
    assert "lab-app-password" not in run.output
