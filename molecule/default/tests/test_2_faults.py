"""Operating the converged stack: the faults an operator meets at 2 a.m. - a backend that never turns
ready during a rolling deploy, and a site.yml killed half-way - then a dry run of the stack they left.
A client calls the API through the balancer throughout each drill and must see no failed request."""

import json
import os
import re
import signal
import subprocess
import time

from stacklab import (
    BACKENDS,
    OUTPUTS,
    PROJECT,
    SECRETS,
    LoadClient,
    ansible_env,
    env_of,
    main_pid,
    play,
    playbook_argv,
    record,
    running_env,
    served_releases,
    upstream_servers,
)

# The killed drill deploys this environment (a change on every backend); the dry run after it uses it too.
KILLED_DRILL_ENV = {"JOB_INTERVAL_MS": "5000", "DRILL_MARK": f"killed-{int(time.time())}"}
KILLED_DRILL_EXTRA = ["-e", json.dumps({"backend_node_env": KILLED_DRILL_ENV})]


def test_a_backend_that_never_turns_ready_stops_the_rolling_deploy_while_the_others_serve():
    first, rest = BACKENDS[0], BACKENDS[1:]
    untouched = {b: (main_pid(b), env_of(b)) for b in rest}
    client = LoadClient()
    # A configuration change that can never become ready: PgBouncer does not listen on 6439.
    run = play("site.yml", "--tags", "backend", "-e", "backend_node_db_port=6439", "-e", "backend_node_ready_timeout=8")
    figures = client.finish()
    assert run.rc != 0
    assert run.recap[first]["failed"] == 1, run.recap
    assert re.search(rf"{first}.*did not answer /health/ready with 200 within 8 s", run.output), run.tail()
    assert "restored the previous configuration: it is ready again" in run.output
    # the deploy stopped at the first backend: the others were not touched
    assert {b: (main_pid(b), env_of(b)) for b in rest} == untouched
    assert figures["failed"] == 0, figures
    assert set(rest) <= set(figures["served_by"]), figures
    # the failed backend is back on its old configuration, ready, and in rotation again
    assert ":6432/" in env_of(first)["DATABASE_URL"]
    assert set(served_releases().values()) == {"1.1.0"}
    assert not [line for line in upstream_servers() if " down;" in line], upstream_servers()
    record("never-ready drill: client requests ok / failed", f"{figures['ok']} / {figures['failed']}")


def test_site_yml_killed_mid_deploy_then_run_again_completes_and_every_backend_runs_the_change():
    # Killed in the backends stage and re-run from there to the end (verify.yml): the stages around it
    # have nothing to do on this stack, and the dry run that follows checks every stage for that.
    marker, extra = KILLED_DRILL_ENV, [*KILLED_DRILL_EXTRA, "--tags", "backend,verify"]
    client = LoadClient()
    proc = subprocess.Popen(
        playbook_argv("site.yml", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ansible_env(),
        cwd=PROJECT,
        start_new_session=True,
    )
    seen, task, killed_after = [], "", None
    for line in proc.stdout:
        seen.append(line)
        task = line.strip(" *\n") if line.startswith("TASK [") else task
        # the first change on the second backend: its new configuration is written, not yet running
        if re.match(rf"changed: \[{BACKENDS[1]}\]", line):
            os.killpg(proc.pid, signal.SIGKILL)
            killed_after = task
            break
    proc.wait(timeout=60)
    OUTPUTS.append("".join(seen))
    assert killed_after, "site.yml finished before the drill could kill it:\n" + "".join(seen[-40:])
    assert proc.returncode == -signal.SIGKILL

    rerun = play("site.yml", *extra)
    figures = client.finish()
    assert rerun.rc == 0 and rerun.failed == 0, rerun.tail()
    for backend in BACKENDS:
        assert running_env(backend).get("DRILL_MARK") == marker["DRILL_MARK"], backend
    assert not [line for line in upstream_servers() if " down;" in line], upstream_servers()
    assert figures["failed"] == 0, figures
    record("killed-mid-run drill: killed right after", f"{BACKENDS[1]}: {killed_after}")
    record("killed-mid-run drill: re-run of backends + verify to completion (s)", round(rerun.seconds, 1))
    record("killed-mid-run drill: client requests ok / failed", f"{figures['ok']} / {figures['failed']}")


def test_check_diff_after_the_killed_run_changes_nothing_fails_nothing_and_shows_no_secret():
    # The same input as the killed drill's re-run: the dry run also proves that re-run left nothing to do.
    run = play("site.yml", "--check", "--diff", *KILLED_DRILL_EXTRA)
    assert run.rc == 0, run.tail()
    assert run.failed == 0 and run.changed == 0, run.recap
    for secret in SECRETS:
        assert secret not in run.output
    record("site.yml --check --diff on the converged stack (s)", round(run.seconds, 1))


def test_no_secret_of_the_inventory_appears_in_any_output():
    assert len(OUTPUTS) >= 4
    for output in OUTPUTS:
        for secret in SECRETS:
            assert secret not in output
