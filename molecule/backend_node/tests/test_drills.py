"""Drills on the whole backend tier, run once (not per host) and in this order: a database outage,
bad input, a health gate that never opens, a release deploy, a broken build, a rollback, a named-ref
rollback caught by the code-identical check, an archive build with the npm test gate and
keep_releases, lock exclusivity, check mode on the converged hosts, and no secret in any output or log."""

import hashlib
import os
import re
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from backend_lab import (
    BACKENDS,
    BASE,
    DB,
    DB_PASSWORD,
    ENV_FILE,
    OUTPUTS,
    PROJECT,
    SERVICE,
    current_release,
    dexec,
    http,
    main_pid,
    play,
    recap_changed,
    record,
    rollback_point,
    tag_commit,
)


def detailed(name):
    return http(name, "GET", "/health/detailed")


def wait_until(predicate, timeout=30, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def releases_served():
    return {name: detailed(name)[1].get("release") for name in BACKENDS}


# --- runbook "Health check verification": a dependency down -------------------------------------


def test_health_detailed_names_the_database_while_postgresql_is_stopped_and_recovers():
    # the instance unit too: stopping the umbrella unit alone returns before the cluster is down
    stop = dexec(DB, "systemctl stop postgresql 'postgresql@*' && ! pg_isready -q")
    assert stop.returncode == 0, stop.stderr
    try:
        for name in BACKENDS:
            status, body = detailed(name)[:2]
            assert status == 503, body
            assert body["status"] == "unhealthy"
            assert body["checks"]["database"] != "ok" and body["checks"]["redis"] == "ok", body
            assert '"database"' in dexec(name, "curl -s 127.0.0.1:3000/health/detailed").stdout
            # liveness does not depend on the database: systemd and the balancer keep the process
            assert http(name, "GET", "/health/live")[0] == 200
    finally:
        assert dexec(DB, "systemctl start postgresql && pg_isready -t 30").returncode == 0
    for name in BACKENDS:
        assert wait_until(lambda n=name: detailed(n)[0] == 200, timeout=30), detailed(name)


# --- bad input fails clearly, before the running release is touched ------------------------------

BAD_INPUT = {
    "a ref that does not exist": (
        "converge.yml",
        ["-e", "backend_node_git_ref=v9.9.9"],
        r"v9\.9\.9 is not a tag, branch or commit",
    ),
    "an unreachable repository": (
        "converge.yml",
        ["-e", "backend_node_git_repo=git://backend_node-util:9419/sample-backend.git"],
        r"Cannot read the repository git://backend_node-util:9419/sample-backend\.git",
    ),
    "a missing DATABASE_URL ingredient": (
        "converge.yml",
        ["-e", "backend_node_db_password="],
        r"backend_node_db_password is empty: DATABASE_URL needs the password",
    ),
    "a rollback to a release that is not built": (
        "rollback.yml",
        ["-e", "backend_node_rollback_to=v0.0.1-missing"],
        r'No built release for "v0\.0\.1-missing"',
    ),
}


@pytest.fixture(scope="module")
def bad_input_runs():
    """The bad runs, all at the same time, with what ran before and after them."""
    before = {name: (current_release(name), main_pid(name)) for name in BACKENDS}
    env_before = {name: dexec(name, f"sha256sum {ENV_FILE}").stdout for name in BACKENDS}
    with ThreadPoolExecutor(max_workers=len(BAD_INPUT)) as pool:
        futures = {case: pool.submit(play, spec[0], *spec[1]) for case, spec in BAD_INPUT.items()}
        results = {case: future.result() for case, future in futures.items()}
    after = {name: (current_release(name), main_pid(name)) for name in BACKENDS}
    env_after = {name: dexec(name, f"sha256sum {ENV_FILE}").stdout for name in BACKENDS}
    return results, before, after, env_before, env_after


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_clearly_before_the_running_release_is_touched(case, bad_input_runs):
    results, before, after, env_before, env_after = bad_input_runs
    rc, output, seconds = results[case]
    assert rc != 0, output[-2000:]
    assert re.search(BAD_INPUT[case][2], output), output[-3000:]
    assert "Nothing was changed" in output or "Check the role's inputs" in output
    # nothing was built, switched or restarted, and the configuration stayed
    reached = ("Install the locked dependencies", "Switch current to", "Restart the service", "Write the environment")
    for task in reached:
        assert not re.search(rf"TASK \[[^\]]*{task}", output), f"{case} reached {task}"
    assert before == after
    assert env_before == env_after


# --- a restart that never turns ready puts the previous state back -------------------------------


def test_a_restart_that_never_turns_ready_is_reverted_and_names_the_cause():
    name = BACKENDS[0]
    release, pid = current_release(name), main_pid(name)
    env_before = dexec(name, f"sha256sum {ENV_FILE}").stdout
    # PostgreSQL is not on port 5439: the new configuration can never become ready
    rc, output, seconds = play(
        "converge.yml", "--limit", name, "-e", "backend_node_db_port=5439", "-e", "backend_node_ready_timeout=6"
    )
    assert rc != 0
    assert re.search(r"did not answer /health/ready with 200 within 6 s", output), output[-3000:]
    assert "database not reached yet" in output
    assert "restored the previous configuration: it is ready again" in output, output[-3000:]
    assert dexec(name, f"sha256sum {ENV_FILE}").stdout == env_before
    assert current_release(name) == release
    assert main_pid(name) != pid  # it was restarted twice: with the bad and the good configuration
    assert detailed(name)[0] == 200


def test_a_configuration_written_by_a_run_that_stopped_before_the_restart_is_applied_by_the_next():
    name = BACKENDS[0]
    pid = main_pid(name)
    # What a killed run leaves behind: the environment file rewritten after the service started
    # (here: the same content, so this run has nothing to write), and no restart.
    dexec(name, f"sleep 1; touch {ENV_FILE}")
    rc, output, seconds = play("converge.yml", "--limit", name)
    assert rc == 0, output[-3000:]
    assert main_pid(name) != pid
    assert detailed(name)[0] == 200
    rc, output, seconds = play("converge.yml", "--limit", name)  # and then it is settled
    assert rc == 0 and recap_changed(output) == {name: 0}, output[-3000:]


# --- runbook "Code rollback": v1.0.0 -> v1.1.0, a broken build, back to v1.0.0 ----------------------


def test_deploy_v1_1_0_rolls_out_to_every_backend():
    assert set(releases_served().values()) == {"1.0.0"}
    rc, output, seconds = play("converge.yml", "-v", "-e", "backend_node_git_ref=v1.1.0")
    assert rc == 0, output[-3000:]
    assert set(releases_served().values()) == {"1.1.0"}
    commit = tag_commit("v1.1.0")
    for name in BACKENDS:
        assert current_release(name) == f"releases/{commit[:12]}"
        assert dexec(name, f"cat {BASE}/current/REVISION").stdout.strip() == commit
        assert dexec(name, f"readlink {BASE}/previous").stdout.strip() == f"releases/{tag_commit('v1.0.0')[:12]}"
    assert f"2 backend(s) run commit {commit}" in output
    record("release switch v1.0.0 -> v1.1.0, build included (s)", f"{seconds:.1f}")
    # each backend recorded what this deployment replaced, under one id for the whole run (both
    # serial batches), before it switched
    points = {name: rollback_point(name) for name in BACKENDS}
    v100 = tag_commit("v1.0.0")
    for name, point in points.items():
        assert point["release"] == v100[:12] and point["commit"] == v100, point
        assert re.fullmatch(r"\d{8}T\d{6}Z", point["deployment"]), point
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", point["recorded"]), point
        assert dexec(name, f"stat -c '%a %U' {BASE}/rollback-point.json").stdout.split() == ["644", "root"]
    assert len({point["deployment"] for point in points.values()}) == 1, points


def test_a_broken_build_leaves_the_previous_release_serving():
    before = {name: (current_release(name), main_pid(name)) for name in BACKENDS}
    # keep asking both backends while the deploy runs
    probes = {
        name: subprocess.Popen(
            [
                "docker",
                "exec",
                name,
                "sh",
                "-c",
                "while [ ! -e /tmp/stop-probe ]; do "
                "curl -s -o /dev/null -w '%{http_code}\\n' -m 5 127.0.0.1:3000/health/detailed; sleep 0.3; done; "
                "rm -f /tmp/stop-probe",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in BACKENDS
    }
    try:
        rc, output, seconds = play("converge.yml", "-v", "-e", "backend_node_git_ref=v1.2.0-broken")
    finally:
        for name in BACKENDS:
            dexec(name, "touch /tmp/stop-probe")
    codes = {name: probe.communicate(timeout=30)[0].split() for name, probe in probes.items()}
    assert rc != 0
    # the build's own error (a TypeScript type error) is in the failure message
    assert re.search(r"Building release e501e59ac2db .* failed at \"Build \(npm run build\)\"", output), output[-3000:]
    assert "error TS" in output
    assert "the running release and the service were left untouched" in output
    for name in BACKENDS:
        assert len(codes[name]) >= 5, codes[name]
        assert set(codes[name]) == {"200"}, codes[name]
        assert (current_release(name), main_pid(name)) == before[name]
        assert dexec(name, f"test -e {BASE}/releases/e501e59ac2db").returncode != 0, "failed release left behind"
    assert set(releases_served().values()) == {"1.1.0"}


def test_rollback_to_v1_0_0_takes_seconds_and_builds_nothing():
    v100 = tag_commit("v1.0.0")[:12]
    modules = {name: dexec(name, f"stat -c '%i %Z' {BASE}/releases/{v100}/node_modules").stdout for name in BACKENDS}
    rc, output, seconds = play("rollback.yml", "-v")
    assert rc == 0, output[-3000:]
    assert set(releases_served().values()) == {"1.0.0"}
    for name in BACKENDS:
        assert current_release(name) == f"releases/{v100}"
        # previous is left where it was: the same rollback again has nothing to do
        assert dexec(name, f"readlink {BASE}/previous").stdout.strip() == f"releases/{v100}"
        assert dexec(name, f"stat -c '%i %Z' {BASE}/releases/{v100}/node_modules").stdout == modules[name]
    assert "npm" not in " ".join(re.findall(r"TASK \[([^\]]*)\]", output))
    record("rollback v1.1.0 -> v1.0.0, 2 backends one at a time (s)", f"{seconds:.1f}")
    assert seconds < 300, seconds  # seconds per backend, not a rebuild; generous for a busy CI machine
    rc, output, seconds = play("rollback.yml")
    assert rc == 0 and set(recap_changed(output).values()) == {0}, output[-3000:]
    assert set(releases_served().values()) == {"1.0.0"}


def test_a_named_ref_rollback_and_the_code_identical_check_that_catches_it():
    name, other = BACKENDS[1], BACKENDS[0]
    v100, v110 = tag_commit("v1.0.0"), tag_commit("v1.1.0")
    # "roll back" one backend to a named ref: resolved in its local repository copy, built already
    rc, output = play("rollback.yml", "--limit", name, "-e", "backend_node_rollback_to=v1.1.0")[:2]
    assert rc == 0, output[-3000:]
    assert current_release(name) == f"releases/{v110[:12]}"
    # runbook "Verify code is identical" now fails and names both commits
    rc, output = play("code-identical.yml")[:2]
    assert rc != 0
    assert f"{other}={v100}" in output and f"{name}={v110}" in output, output[-2000:]
    # rolling back again goes back to what ran before
    rc, output = play("rollback.yml", "--limit", name)[:2]
    assert rc == 0, output[-3000:]
    assert current_release(name) == f"releases/{v100[:12]}"


# --- another source: an archive, built with the npm test gate on ----------------------------------


def test_an_archive_builds_beside_the_running_release_with_the_npm_test_gate_and_keep_releases_prunes(tmp_path):
    name = BACKENDS[1]
    repo = tmp_path / "app.git"
    subprocess.run([os.path.join(PROJECT, "tests/app/make-release-repo.sh"), "--bare", str(repo)], check=True)
    archive = tmp_path / "app-v1.1.0.tar.gz"
    subprocess.run(["git", "--git-dir", str(repo), "archive", "-o", str(archive), "v1.1.0"], check=True)
    commit = tag_commit("v1.1.0")
    release = "a-" + hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    before = (current_release(name), main_pid(name))
    rc, output = play(
        "build.yml",
        "--limit",
        name,
        "-e",
        "backend_node_source=archive",
        "-e",
        f"backend_node_archive={archive}",
        "-e",
        f"backend_node_archive_revision={commit}",
        "-e",
        "backend_node_npm_test=true",
    )[:2]
    try:
        assert rc == 0, output[-3000:]
        assert re.search(r"TASK \[[^\]]*Run the app's tests \(npm test\)\][^\n]*\n(?:.*\n)?changed: \[" + name, output)
        assert dexec(name, f"cat {BASE}/releases/{release}/REVISION").stdout.strip() == commit
        assert dexec(name, f"test -f {BASE}/releases/{release}/dist/src/server.js").returncode == 0
        assert (current_release(name), main_pid(name)) == before
        # keep_releases: an old complete build and a failed one go; the newest build, and the
        # releases current and previous point to, stay
        old, failed = f"{BASE}/releases/0123456789ab", f"{BASE}/releases/fedcba987654"
        dexec(name, f"mkdir -p {old} {failed} && touch -d '2020-01-01' {old}/.ywm-release.json")
        kept = dexec(name, f"readlink {BASE}/current {BASE}/previous").stdout.split()
        rc, output = play("converge.yml", "--limit", name, "-e", "backend_node_keep_releases=1")[:2]
        assert rc == 0, output[-3000:]
        left = dexec(name, f"ls {BASE}/releases").stdout.split()
        assert sorted(left) == sorted({release, *(k.split("/")[-1] for k in kept)}), left
    finally:
        dexec(name, f"rm -rf {BASE}/releases/{release}")


# --- runbook "Verify distributed locking" ---------------------------------------------------------


def test_each_job_run_is_executed_by_exactly_one_backend():
    pattern = re.compile(r"Acquired lock for job: (\S+) server=(\S+) run=(\S+)")
    acquired = []
    held = 0
    for name in BACKENDS:
        log = dexec(name, f"journalctl -u {SERVICE} --no-pager -o cat").stdout
        acquired += [(m.group(3), m.group(2)) for m in pattern.finditer(log)]
        held += log.count("Job lock held by another server")
    runs = Counter(run for run, server in acquired)
    assert len(runs) >= 5, runs
    assert [run for run, count in runs.items() if count > 1] == []
    assert {server for run, server in acquired} == set(BACKENDS)  # both take part
    assert held > 0  # and each sometimes finds the lock taken
    status, body = http(BACKENDS[0], "GET", "/admin/jobs?limit=100")[:2]
    ids = [run["run_id"] for run in body["runs"]]
    assert status == 200 and len(ids) == len(set(ids))
    record("job runs checked for lock exclusivity", f"{len(runs)} runs, {held} 'lock held' skips")


# --- check mode on the converged hosts, and secrets ------------------------------------------------


def test_check_mode_on_the_converged_hosts_reports_nothing_to_change():
    rc, output = play("converge.yml", "--check", "--diff")[:2]
    assert rc == 0, output[-3000:]
    changed = recap_changed(output)
    assert changed and set(changed.values()) == {0}, changed


def test_the_database_password_appears_in_no_ansible_output_or_log():
    assert len(OUTPUTS) >= 8
    for what, output in OUTPUTS:
        assert DB_PASSWORD not in output, f"the password leaked in the output of {what}"
    for name in [*BACKENDS, DB]:
        logs = dexec(name, "journalctl --no-pager -o cat; cat /var/log/postgresql/*.log 2>/dev/null").stdout
        assert DB_PASSWORD not in logs, f"the password is in a log on {name}"
        assert DB_PASSWORD not in dexec(name, f"systemctl show {SERVICE} 2>/dev/null").stdout
    # it is where it belongs, readable by root only
    assert DB_PASSWORD in dexec(BACKENDS[0], f"cat {ENV_FILE}").stdout
