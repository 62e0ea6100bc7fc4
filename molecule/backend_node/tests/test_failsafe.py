"""Fail-safe behaviour of the role, run after the drills (both backends on v1.0.0): bad input of every
class stops before any change, the rollback point a deploy recorded survives a no-op run, tasks_from:
facts, a rollback to the running release, a reconfigure without any network, a drained backend healed
by the next run, and a repository token that never shows in output or process arguments."""

import json
import re
import time
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
    USER,
    UTIL,
    current_release,
    file_state,
    http,
    main_pid,
    play,
    rollback_point,
    tag_commit,
)

HOOK_LOG = "ywlab-lb-hooks.log"  # in /var/tmp


def hook_events(name):
    return labkit.docker_exec(name, f"cat /var/tmp/{HOOK_LOG}", check=False).stdout.split()[0::2]


def ready(name):
    return http(name, "GET", "/health/ready")[0] == 200


# --- every class of bad input fails before any change, naming the variable -----------------------

BAD = {
    "DATABASE_URL host with @": ({"backend_node_db_host": "evil@backend_node-db"}, "backend_node_db_host"),
    "DATABASE_URL host with /": ({"backend_node_db_host": "backend_node-db/evil"}, "backend_node_db_host"),
    "newline in an environment value": (
        {"backend_node_env": {"JOB_INTERVAL_MS": "3000\nNODE_OPTIONS=--inspect"}},
        "values must be one line.*JOB_INTERVAL_MS",
    ),
    "bad environment variable name": ({"backend_node_env": {"BAD-NAME": "1"}}, "names must be letters.*BAD-NAME"),
    "ExecStart argument with a newline": (
        {"backend_node_node_args": ["--max-old-space-size=256\nExecStartPre=/bin/sh -c id"]},
        "backend_node_node_args must not contain newlines",
    ),
    "service name with /": ({"backend_node_service_name": "ywm/api"}, "backend_node_service_name must be"),
    "service name with a space": ({"backend_node_service_name": "ywm api"}, "backend_node_service_name must be"),
}


@pytest.fixture(scope="module")
def bad_runs():
    before = {name: file_state(name) for name in BACKENDS}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(play, "converge.yml", "-e", json.dumps(spec[0])) for case, spec in BAD.items()}
        results = {case: future.result() for case, future in futures.items()}
    after = {name: file_state(name) for name in BACKENDS}
    return results, before, after


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_before_any_change_naming_the_variable(case, bad_runs):
    results, before, after = bad_runs
    run = results[case]
    assert run.rc != 0, run.output[-2000:]
    message = r"ywmessaging\.scaling\.backend_node: \d+ problem\(s\):.*" + BAD[case][1]
    assert re.search(message, run.output), run.output[-3000:]
    for task in ("Install Node.js", "Write the environment", "Write the systemd unit", "Restart the service"):
        assert not re.search(rf"TASK \[[^\]]*{task}", run.output), f"{case} reached {task}"
    # environment file, unit, current and the running process are the same
    assert before == after
    for name in BACKENDS:
        assert "\n0\n" not in after[name] and len(after[name].splitlines()) == 4, after[name]


def test_one_message_names_every_bad_variable():
    run = play(
        "converge.yml",
        "--limit",
        BACKENDS[0],
        "-e",
        json.dumps({"backend_node_db_host": "a@b", "backend_node_redis_host": "r/x", "backend_node_env": {"1X": "1"}}),
    )
    assert run.rc != 0
    message = re.search(r"ywmessaging\.scaling\.backend_node: (\d+) problem\(s\):([^\n]*)", run.output)
    assert message and int(message.group(1)) == 3, run.output[-3000:]
    for variable in ("backend_node_db_host", "backend_node_redis_host", "1X"):
        assert variable in message.group(2)


# --- the rollback point: written by a real deploy (test_drills), unchanged by a no-op run -------------
# --- and undrain heals a run killed between readiness and undrain ---------------------------------------


def test_a_no_op_run_keeps_the_rollback_point_and_undrains_a_backend_left_drained():
    name = BACKENDS[0]
    point_state = f"stat -c '%Y %s' {BASE}/rollback-point.json; sha256sum {BASE}/rollback-point.json"
    point = labkit.docker_exec(name, point_state, check=False).stdout
    assert rollback_point(name)["release"] == tag_commit("v1.0.0")[:12]
    pid = main_pid(name)
    # what a run killed after readiness but before undrain leaves: the balancer still has it drained
    labkit.docker_exec(
        name, f'echo "drain $(date +%s.%N)" >> /var/tmp/{HOOK_LOG}; touch /var/tmp/ywlab-lb-drained', check=False
    )
    run = play("converge.yml", "--limit", name)
    assert run.rc == 0, run.output[-3000:]
    assert {h: c["changed"] for h, c in run.recap.items()} == {name: 0}, run.output[-3000:]
    assert main_pid(name) == pid  # nothing restarted
    assert hook_events(name)[-1] == "undrain"
    assert labkit.docker_exec(name, "test -e /var/tmp/ywlab-lb-drained", check=False).returncode != 0, "still drained"
    assert labkit.docker_exec(name, point_state, check=False).stdout == point


def test_a_rerun_of_the_same_deployment_keeps_its_first_rollback_point():
    name = BACKENDS[0]  # v1.1.0 is still built there
    v100, v110 = tag_commit("v1.0.0"), tag_commit("v1.1.0")
    try:
        deployment = ["-e", "backend_node_deployment_id=lab-d1"]
        run = play("converge.yml", "--limit", name, "-e", "backend_node_git_ref=v1.1.0", *deployment)
        assert run.rc == 0, run.output[-3000:]
        first = rollback_point(name)
        assert (first["deployment"], first["release"], first["commit"]) == ("lab-d1", v100[:12], v100)
        # the same deployment switching again (here: back) does not overwrite what it recorded first
        run = play("converge.yml", "--limit", name, *deployment)
        assert run.rc == 0, run.output[-3000:]
        assert current_release(name) == f"releases/{v100[:12]}"
        assert rollback_point(name) == first
        # a rollback writes no point
        run = play("rollback.yml", "--limit", name, "-e", f"backend_node_rollback_to={v110[:12]}")
        assert run.rc == 0, run.output[-3000:]
        assert rollback_point(name) == first
    finally:
        run = play("converge.yml", "--limit", name)
        assert run.rc == 0, run.output[-3000:]
    assert current_release(name) == f"releases/{v100[:12]}"
    point = rollback_point(name)
    assert point["release"] == v110[:12] and point["deployment"] != "lab-d1"


# --- tasks_from: facts -----------------------------------------------------------------------------


def read_facts(directory):
    return {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}


def test_facts_entry_point_reads_what_runs_also_in_check_mode(tmp_path):
    run = play("facts.yml", "--check", "-e", f"lab_facts_dir={tmp_path}")
    assert run.rc == 0, run.output[-3000:]
    assert {h: c["changed"] for h, c in run.recap.items()} == dict.fromkeys(BACKENDS, 0)
    facts = read_facts(tmp_path)
    assert set(facts) == set(BACKENDS), run.output[-2000:]
    for name in BACKENDS:
        f = facts[name]
        release = current_release(name).split("/")[-1]
        assert f["release"] == release
        assert f["commit"] == labkit.docker_exec(name, f"cat {BASE}/current/REVISION", check=False).stdout.strip()
        previous = labkit.docker_exec(name, f"readlink {BASE}/previous", check=False).stdout.strip()
        assert f["previous"] == previous.split("/")[-1]
        assert f["rollback_point"] == rollback_point(name)
        assert f["database"] == "backend_node-db:5432"
        assert (f["service"], f["port"], f["base_dir"]) == (SERVICE, 3000, BASE)
    assert DB_PASSWORD not in run.output


def test_facts_on_a_host_never_deployed_to_are_empty(tmp_path):
    run = play("facts.yml", "--check", "-e", f"lab_facts_hosts={UTIL}", "-e", f"lab_facts_dir={tmp_path}")
    assert run.rc == 0, run.output[-3000:]
    assert read_facts(tmp_path)[UTIL] == {
        "release": "",
        "commit": "",
        "previous": "",
        "rollback_point": {},
        "database": "",
        "service": SERVICE,
        "port": 3000,
        "base_dir": BASE,
    }


# --- a rollback to the release that runs already ------------------------------------------------------


def test_a_rollback_to_the_running_release_changes_nothing():
    before = {name: (file_state(name), len(hook_events(name))) for name in BACKENDS}
    release = current_release(BACKENDS[0]).split("/")[-1]
    assert release == current_release(BACKENDS[1]).split("/")[-1]
    run = play("rollback.yml", "-e", f"backend_node_rollback_to={release}")
    assert run.rc == 0, run.output[-3000:]
    assert {h: c["changed"] for h, c in run.recap.items()} == dict.fromkeys(BACKENDS, 0), run.output[-3000:]
    for name in BACKENDS:
        assert file_state(name) == before[name][0]  # no restart
        assert hook_events(name)[before[name][1] :] == ["undrain"]  # no drain; the ready backend undrained


# --- tasks_from: reconfigure, with no network -----------------------------------------------------------


def test_reconfigure_changes_the_database_endpoint_without_any_network():
    name = BACKENDS[0]
    db_ip = labkit.docker_exec(name, f"getent ahostsv4 {DB} | head -n1 | cut -d' ' -f1", check=False).stdout.strip()
    assert re.fullmatch(r"[0-9.]+", db_ip), db_ip
    release, pid = current_release(name), main_pid(name)
    # an unreachable repository and a package that does not exist: any git or apt use would fail
    offline = [
        "-e",
        "backend_node_git_repo=git://backend_node-util:9419/no-such-repo.git",
        "-e",
        json.dumps({"backend_node_packages": ["ywlab-no-such-package"]}),
    ]
    try:
        run = play("reconfigure.yml", "--limit", name, "-e", f"backend_node_db_host={db_ip}", *offline)
        assert run.rc == 0, run.output[-3000:]
        assert f"@{db_ip}:5432/" in labkit.docker_exec(name, f"grep ^DATABASE_URL= {ENV_FILE}", check=False).stdout
        assert current_release(name) == release
        assert main_pid(name) != pid
        assert ready(name) and http(name, "GET", "/health/detailed")[1]["checks"]["database"] == "ok"
        assert hook_events(name)[-2:] == ["drain", "undrain"]
        tasks = " ".join(re.findall(r"TASK \[([^\]]*)\]", run.output))
        for word in ("ls-remote", "Fetch", "npm", "Install Node.js", "Ask the repository"):
            assert word not in tasks
    finally:
        run = play("reconfigure.yml", "--limit", name, *offline)
        assert run.rc == 0, run.output[-3000:]
    assert "@backend_node-db:5432/" in labkit.docker_exec(name, f"grep ^DATABASE_URL= {ENV_FILE}", check=False).stdout
    run = play("converge.yml", "--limit", name)
    assert run.rc == 0 and {h: c["changed"] for h, c in run.recap.items()} == {name: 0}, run.output[-3000:]


# --- a repository URL with a token --------------------------------------------------------------------

LAB_GIT_AUTH = "ywlab-tok-9c41e7d2b8"
# A read-only "dumb HTTP" git server on the util host that wants Basic auth with the token and answers
# slowly, so the git processes on the backend live long enough to be seen in /proc.
AUTH_SERVER = r"""
import base64, functools, http.server, os, time
open("/var/tmp/ywlab-git-server.pid", "w").write(str(os.getpid()))
token = open("/var/tmp/ywlab-git-token").read().strip()
want = "Basic " + base64.b64encode(("ywlab:" + token).encode()).decode()
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.7)
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="lab"')
            self.end_headers()
            return
        super().do_GET()
http.server.ThreadingHTTPServer(("", 8418), functools.partial(Handler, directory="/srv/git")).serve_forever()
"""
# Samples every process's arguments on the backend; the pattern does not match its own command line.
SAMPLER = (
    "rm -f /var/tmp/ywlab-cmdlines; while [ ! -e /var/tmp/ywlab-stop-sampler ]; do "
    "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' "
    "| grep -o -e 'ywlab-tok[-]9c41' -e 'git-remote-htt[p][^ ]* [^ ]*' "
    ">> /var/tmp/ywlab-cmdlines; sleep 0.1; done; rm -f /var/tmp/ywlab-stop-sampler"
)


@pytest.fixture
def auth_git_server():
    labkit.docker_exec(UTIL, f"echo {LAB_GIT_AUTH} > /var/tmp/ywlab-git-token", check=False)
    labkit.docker_exec(UTIL, "git --git-dir /srv/git/sample-backend.git update-server-info", check=False)
    # its request log goes where pytest captures the test's output, as a pipe nobody reads would fill up
    server = labkit.docker_popen(UTIL, ["python3", "-c", AUTH_SERVER], stdout=None, stderr=None)
    probe = "python3 -c \"import socket; socket.create_connection(('127.0.0.1', 8418))\""
    assert any(time.sleep(0.5) or labkit.docker_exec(UTIL, probe, check=False).returncode == 0 for _unused in range(40))
    yield f"http://ywlab:{LAB_GIT_AUTH}@{UTIL}:8418/sample-backend.git"
    labkit.docker_exec(
        UTIL,
        "kill $(cat /var/tmp/ywlab-git-server.pid); rm -f /var/tmp/ywlab-git-token /var/tmp/ywlab-git-server.pid",
        check=False,
    )
    server.wait(timeout=30)


def test_a_repository_token_is_in_no_output_and_no_process_argument(auth_git_server):
    name = BACKENDS[0]
    v100 = tag_commit("v1.0.0")
    # a wrong port: the error names the repository with the token redacted
    bad_url = auth_git_server.replace(":8418/", ":9/")
    run = play("converge.yml", "--limit", name, "-v", "-e", f"backend_node_git_repo={bad_url}")
    assert run.rc != 0
    assert f"Cannot read the repository http://***@{UTIL}:9/sample-backend.git" in run.output, run.output[-3000:]
    # the real server, and an empty local copy so that git has to fetch through it too
    labkit.docker_exec(name, f"rm -rf {BASE}/repo.git", check=False)
    sampler = labkit.docker_popen(name, SAMPLER, stdout=None, stderr=None)
    try:
        repo = ["-e", f"backend_node_git_repo={auth_git_server}", "-e", f"backend_node_git_ref={v100}"]
        run = play("converge.yml", "--limit", name, "-v", *repo)
    finally:
        labkit.docker_exec(name, "touch /var/tmp/ywlab-stop-sampler", check=False)
        sampler.wait(timeout=30)
    assert run.rc == 0, run.output[-3000:]
    assert re.search(r"TASK \[[^\]]*Fetch branches and tags from http://\*\*\*@backend_node-util:8418/", run.output)
    labkit.docker_exec(name, f"git --git-dir {BASE}/repo.git cat-file -e {v100}^{{commit}}")  # fails the test if not
    seen = labkit.docker_exec(name, "cat /var/tmp/ywlab-cmdlines", check=False).stdout
    assert f"git-remote-http http://{UTIL}:8418/sample-backend.git" in seen, seen  # the sampler saw git at work
    assert "ywlab-tok-9c41" not in seen, seen
    stored = labkit.docker_exec(name, f"stat -c '%a %U' {BASE}/.git-credentials", check=False).stdout.split()
    assert stored == ["600", USER]
    for number, output in enumerate(labkit.OUTPUTS, 1):
        what = f"ansible-playbook output {number} (labkit.OUTPUTS)"
        assert LAB_GIT_AUTH not in output, f"the token leaked in {what}"
        assert DB_PASSWORD not in output, f"the database password leaked in {what}"
    # back to the git:// remote: the stored credentials go
    run = play("converge.yml", "--limit", name)
    assert run.rc == 0, run.output[-3000:]
    assert labkit.docker_exec(name, f"test -e {BASE}/.git-credentials", check=False).returncode != 0
    assert current_release(name) == f"releases/{v100[:12]}"
