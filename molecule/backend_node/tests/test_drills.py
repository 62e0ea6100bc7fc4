"""Drills on the whole backend tier, run once (not per host) and in this order: a database outage,
bad input, a health gate that never opens, a release deploy, a broken build, a rollback, a named-ref
rollback caught by the code-identical check, an archive build with the npm test gate and
keep_releases, lock exclusivity, check mode on the converged hosts, and no secret in any output or log."""

import hashlib
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import labkit
import pytest
from backend_lab import (
    BACKENDS,
    BASE,
    DB,
    DB_PASSWORD,
    ENV_FILE,
    SERVICE,
    current_release,
    http,
    main_pid,
    play,
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
    labkit.docker_exec(DB, "systemctl stop postgresql 'postgresql@*' && ! pg_isready -q")  # fails the test if not
    try:
        for name in BACKENDS:
            status, body = detailed(name)[:2]
            assert status == 503, body
            assert body["status"] == "unhealthy"
            assert body["checks"]["database"] != "ok" and body["checks"]["redis"] == "ok", body
            raw = labkit.docker_exec(name, "curl -s 127.0.0.1:3000/health/detailed", check=False).stdout
            assert '"database"' in raw
            # liveness does not depend on the database: systemd and the balancer keep the process
            assert http(name, "GET", "/health/live")[0] == 200
    finally:
        labkit.docker_exec(DB, "systemctl start postgresql && pg_isready -t 30")
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
    env_before = {name: labkit.docker_exec(name, f"sha256sum {ENV_FILE}", check=False).stdout for name in BACKENDS}
    with ThreadPoolExecutor(max_workers=len(BAD_INPUT)) as pool:
        futures = {case: pool.submit(play, spec[0], *spec[1]) for case, spec in BAD_INPUT.items()}
        results = {case: future.result() for case, future in futures.items()}
    after = {name: (current_release(name), main_pid(name)) for name in BACKENDS}
    env_after = {name: labkit.docker_exec(name, f"sha256sum {ENV_FILE}", check=False).stdout for name in BACKENDS}
    return results, before, after, env_before, env_after


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_clearly_before_the_running_release_is_touched(case, bad_input_runs):
    results, before, after, env_before, env_after = bad_input_runs
    run = results[case]
    assert run.rc != 0, run.output[-2000:]
    assert re.search(BAD_INPUT[case][2], run.output), run.output[-3000:]
    assert "Nothing was changed" in run.output or "Check the role's inputs" in run.output
    # nothing was built, switched or restarted, and the configuration stayed
    reached = ("Install the locked dependencies", "Switch current to", "Restart the service", "Write the environment")
    for task in reached:
        assert not re.search(rf"TASK \[[^\]]*{task}", run.output), f"{case} reached {task}"
    assert before == after
    assert env_before == env_after


# --- a restart that never turns ready puts the previous state back -------------------------------


def test_a_restart_that_never_turns_ready_is_reverted_and_names_the_cause():
    name = BACKENDS[0]
    release, pid = current_release(name), main_pid(name)
    env_before = labkit.docker_exec(name, f"sha256sum {ENV_FILE}", check=False).stdout
    # PostgreSQL is not on port 5439: the new configuration can never become ready
    run = play("converge.yml", "--limit", name, "-e", "backend_node_db_port=5439", "-e", "backend_node_ready_timeout=6")
    assert run.rc != 0
    assert re.search(r"did not answer /health/ready with 200 within 6 s", run.output), run.output[-3000:]
    assert "database not reached yet" in run.output
    assert "restored the previous configuration: it is ready again" in run.output, run.output[-3000:]
    assert labkit.docker_exec(name, f"sha256sum {ENV_FILE}", check=False).stdout == env_before
    assert current_release(name) == release
    assert main_pid(name) != pid  # it was restarted twice: with the bad and the good configuration
    assert detailed(name)[0] == 200


def test_a_configuration_written_by_a_run_that_stopped_before_the_restart_is_applied_by_the_next():
    name = BACKENDS[0]
    pid = main_pid(name)
    # What a killed run leaves behind: the environment file rewritten after the service started
    # (here: the same content, so this run has nothing to write), and no restart.
    labkit.docker_exec(name, f"sleep 1; touch {ENV_FILE}", check=False)
    run = play("converge.yml", "--limit", name)
    assert run.rc == 0, run.output[-3000:]
    assert main_pid(name) != pid
    assert detailed(name)[0] == 200
    run = play("converge.yml", "--limit", name)  # and then it is settled
    assert run.rc == 0 and {h: c["changed"] for h, c in run.recap.items()} == {name: 0}, run.output[-3000:]


# --- runbook "Code rollback": v1.0.0 -> v1.1.0, a broken build, back to v1.0.0 ----------------------


def test_deploy_v1_1_0_rolls_out_to_every_backend():
    assert set(releases_served().values()) == {"1.0.0"}
    run = play("converge.yml", "-v", "-e", "backend_node_git_ref=v1.1.0")
    assert run.rc == 0, run.output[-3000:]
    assert set(releases_served().values()) == {"1.1.0"}
    commit = tag_commit("v1.1.0")
    for name in BACKENDS:
        assert current_release(name) == f"releases/{commit[:12]}"
        assert labkit.docker_exec(name, f"cat {BASE}/current/REVISION", check=False).stdout.strip() == commit
        previous = labkit.docker_exec(name, f"readlink {BASE}/previous", check=False).stdout.strip()
        assert previous == f"releases/{tag_commit('v1.0.0')[:12]}"
    assert f"2 backend(s) run commit {commit}" in run.output
    labkit.record("release switch v1.0.0 -> v1.1.0, build included (s)", f"{run.seconds:.1f}")
    # each backend recorded what this deployment replaced, under one id for the whole run (both
    # serial batches), before it switched
    points = {name: rollback_point(name) for name in BACKENDS}
    v100 = tag_commit("v1.0.0")
    for name, point in points.items():
        assert point["release"] == v100[:12] and point["commit"] == v100, point
        assert re.fullmatch(r"\d{8}T\d{6}Z", point["deployment"]), point
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", point["recorded"]), point
        mode = labkit.docker_exec(name, f"stat -c '%a %U' {BASE}/rollback-point.json", check=False).stdout.split()
        assert mode == ["644", "root"]
    assert len({point["deployment"] for point in points.values()}) == 1, points


def test_a_broken_build_leaves_the_previous_release_serving():
    before = {name: (current_release(name), main_pid(name)) for name in BACKENDS}
    # keep asking both backends while the deploy runs
    probes = {
        name: labkit.docker_popen(
            name,
            "while [ ! -e /tmp/stop-probe ]; do "
            "curl -s -o /dev/null -w '%{http_code}\\n' -m 5 127.0.0.1:3000/health/detailed; sleep 0.3; done; "
            "rm -f /tmp/stop-probe",
            stderr=None,
        )
        for name in BACKENDS
    }
    try:
        run = play("converge.yml", "-v", "-e", "backend_node_git_ref=v1.2.0-broken")
    finally:
        for name in BACKENDS:
            labkit.docker_exec(name, "touch /tmp/stop-probe", check=False)
    codes = {name: probe.communicate(timeout=30)[0].split() for name, probe in probes.items()}
    assert run.rc != 0
    # the build's own error (a TypeScript type error) is in the failure message; the release is named by
    # its commit, which changes with the app's sources
    broken = tag_commit("v1.2.0-broken")[:12]
    failed_build = rf"Building release {broken} .* failed at \"Build \(npm run build\)\""
    assert re.search(failed_build, run.output), run.output[-3000:]
    assert "error TS" in run.output
    assert "the running release and the service were left untouched" in run.output
    for name in BACKENDS:
        assert len(codes[name]) >= 5, codes[name]
        assert set(codes[name]) == {"200"}, codes[name]
        assert (current_release(name), main_pid(name)) == before[name]
        assert labkit.docker_exec(name, f"test -e {BASE}/releases/{broken}", check=False).returncode != 0, (
            "failed release left behind"
        )
    assert set(releases_served().values()) == {"1.1.0"}


def test_rollback_to_v1_0_0_takes_seconds_and_builds_nothing():
    v100 = tag_commit("v1.0.0")[:12]

    def node_modules(name):
        return labkit.docker_exec(name, f"stat -c '%i %Z' {BASE}/releases/{v100}/node_modules", check=False).stdout

    modules = {name: node_modules(name) for name in BACKENDS}
    run = play("rollback.yml", "-v")
    assert run.rc == 0, run.output[-3000:]
    assert set(releases_served().values()) == {"1.0.0"}
    for name in BACKENDS:
        assert current_release(name) == f"releases/{v100}"
        # previous is left where it was: the same rollback again has nothing to do
        assert labkit.docker_exec(name, f"readlink {BASE}/previous", check=False).stdout.strip() == f"releases/{v100}"
        assert node_modules(name) == modules[name]
    assert "npm" not in " ".join(re.findall(r"TASK \[([^\]]*)\]", run.output))
    labkit.record("rollback v1.1.0 -> v1.0.0, 2 backends one at a time (s)", f"{run.seconds:.1f}")
    assert run.seconds < 300, run.seconds  # seconds per backend, not a rebuild; generous for a busy CI machine
    run = play("rollback.yml")
    assert run.rc == 0 and {c["changed"] for c in run.recap.values()} == {0}, run.output[-3000:]
    assert set(releases_served().values()) == {"1.0.0"}


def test_a_named_ref_rollback_and_the_code_identical_check_that_catches_it():
    name, other = BACKENDS[1], BACKENDS[0]
    v100, v110 = tag_commit("v1.0.0"), tag_commit("v1.1.0")
    # "roll back" one backend to a named ref: resolved in its local repository copy, built already
    run = play("rollback.yml", "--limit", name, "-e", "backend_node_rollback_to=v1.1.0")
    assert run.rc == 0, run.output[-3000:]
    assert current_release(name) == f"releases/{v110[:12]}"
    # runbook "Verify code is identical" now fails and names both commits
    run = play("code-identical.yml")
    assert run.rc != 0
    assert f"{other}={v100}" in run.output and f"{name}={v110}" in run.output, run.output[-2000:]
    # rolling back again goes back to what ran before
    run = play("rollback.yml", "--limit", name)
    assert run.rc == 0, run.output[-3000:]
    assert current_release(name) == f"releases/{v100[:12]}"


# --- another source: an archive, built with the npm test gate on ----------------------------------


def test_an_archive_builds_beside_the_running_release_with_the_npm_test_gate_and_keep_releases_prunes(tmp_path):
    name = BACKENDS[1]
    repo = tmp_path / "app.git"
    labkit.run([os.path.join(labkit.PROJECT, "tests/app/make-release-repo.sh"), "--bare", str(repo)], timeout=300)
    archive = tmp_path / "app-v1.1.0.tar.gz"
    labkit.run(["git", "--git-dir", str(repo), "archive", "-o", str(archive), "v1.1.0"])
    commit = tag_commit("v1.1.0")
    release = "a-" + hashlib.sha256(archive.read_bytes()).hexdigest()[:12]
    before = (current_release(name), main_pid(name))
    run = play(
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
    )
    try:
        assert run.rc == 0, run.output[-3000:]
        assert re.search(
            r"TASK \[[^\]]*Run the app's tests \(npm test\)\][^\n]*\n(?:.*\n)?changed: \[" + name, run.output
        )
        assert labkit.docker_exec(name, f"cat {BASE}/releases/{release}/REVISION", check=False).stdout.strip() == commit
        labkit.docker_exec(name, f"test -f {BASE}/releases/{release}/dist/src/server.js")  # fails the test if not
        assert (current_release(name), main_pid(name)) == before
        # keep_releases: an old complete build and a failed one go; the newest build, and the
        # releases current and previous point to, stay
        old, failed = f"{BASE}/releases/0123456789ab", f"{BASE}/releases/fedcba987654"
        labkit.docker_exec(
            name, f"mkdir -p {old} {failed} && touch -d '2020-01-01' {old}/.ywm-release.json", check=False
        )
        kept = labkit.docker_exec(name, f"readlink {BASE}/current {BASE}/previous", check=False).stdout.split()
        run = play("converge.yml", "--limit", name, "-e", "backend_node_keep_releases=1")
        assert run.rc == 0, run.output[-3000:]
        left = labkit.docker_exec(name, f"ls {BASE}/releases", check=False).stdout.split()
        assert sorted(left) == sorted({release, *(k.split("/")[-1] for k in kept)}), left
    finally:
        labkit.docker_exec(name, f"rm -rf {BASE}/releases/{release}", check=False)


# --- runbook "Verify distributed locking" ---------------------------------------------------------


def test_each_job_run_is_executed_by_exactly_one_backend():
    pattern = re.compile(r"Acquired lock for job: (\S+) server=(\S+) run=(\S+)")
    acquired = []
    held = 0
    for name in BACKENDS:
        log = labkit.docker_exec(name, f"journalctl -u {SERVICE} --no-pager -o cat", check=False).stdout
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
    labkit.record("job runs checked for lock exclusivity", f"{len(runs)} runs, {held} 'lock held' skips")


# --- check mode on the converged hosts, and secrets ------------------------------------------------


def test_check_mode_on_the_converged_hosts_reports_nothing_to_change():
    run = play("converge.yml", "--check", "--diff")
    assert run.rc == 0, run.output[-3000:]
    changed = {h: c["changed"] for h, c in run.recap.items()}
    assert changed and set(changed.values()) == {0}, changed


def test_the_database_password_appears_in_no_ansible_output_or_log():
    assert len(labkit.OUTPUTS) >= 8
    for number, output in enumerate(labkit.OUTPUTS, 1):
        assert DB_PASSWORD not in output, f"the password leaked in ansible-playbook output {number} (labkit.OUTPUTS)"
    for name in [*BACKENDS, DB]:
        logs = labkit.docker_exec(
            name, "journalctl --no-pager -o cat; cat /var/log/postgresql/*.log 2>/dev/null", check=False
        ).stdout
        assert DB_PASSWORD not in logs, f"the password is in a log on {name}"
        assert DB_PASSWORD not in labkit.docker_exec(name, f"systemctl show {SERVICE} 2>/dev/null", check=False).stdout
    # it is where it belongs, readable by root only
    assert DB_PASSWORD in labkit.docker_exec(BACKENDS[0], f"cat {ENV_FILE}", check=False).stdout
