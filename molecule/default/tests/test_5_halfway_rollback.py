"""A rolling deploy that stopped half-way, then rollback.yml's code part: every backend goes back to
the release it ran before that deployment - not to each host's own `previous`, which on a backend
the deploy never reached, or on one it reverted by itself, is a release older."""

import json

from stacklab import BACKENDS, LoadClient, play, record, served_releases


def test_code_rollback_after_a_deploy_that_stopped_half_way_restores_what_ran_before_it():
    # A full deployment of v1.0.0 first, so that every backend's `previous` is v1.1.0.
    run = play("site.yml", "--tags", "backend", "-e", "backend_node_git_ref=v1.0.0")
    assert run.rc == 0, run.tail()
    assert set(served_releases().values()) == {"1.0.0"}

    # Then v1.1.0, which the second backend never turns ready on (its database port is wrong): the
    # first backend runs v1.1.0, the second switched back by itself, the third was never reached.
    broken = {
        "backend_node_git_ref": "v1.1.0",
        "backend_node_db_port": "{{ 6439 if inventory_hostname == '%s' else 6432 }}" % BACKENDS[1],
        "backend_node_ready_timeout": 8,
    }
    run = play("site.yml", "--tags", "backend", "-e", json.dumps(broken))
    assert run.rc != 0
    assert run.recap[BACKENDS[1]]["failed"] == 1, run.recap
    assert served_releases() == {BACKENDS[0]: "1.1.0", BACKENDS[1]: "1.0.0", BACKENDS[2]: "1.0.0"}

    client = LoadClient()
    rollback = play("rollback.yml", "-e", "rollback_parts=code")
    figures = client.finish()
    assert rollback.rc == 0, rollback.tail()
    assert set(served_releases().values()) == {"1.0.0"}, served_releases()
    assert figures["failed"] == 0, figures
    record("half-way deploy -> rollback.yml code (s)", round(rollback.seconds, 1))
    record("half-way deploy -> rollback: client requests ok / failed", f"{figures['ok']} / {figures['failed']}")

    again = play("rollback.yml", "-e", "rollback_parts=code")
    assert again.rc == 0 and again.changed == 0, again.recap
