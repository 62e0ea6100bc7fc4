"""The scenarios' shared harness (molecule/_shared/labkit.py) against the real lab hosts: docker exec
by platform name with env and user, a script answering in JSON while it runs, and the PLAY RECAP of
a real run through Molecule's inventory, read the same with and without colour."""

import labkit
import pytest

LAB_HOSTS = {"lab-bookworm": "bookworm", "lab-trixie": "trixie"}

COUNTER = r"""
import json, os, sys, time
stop, started, rounds = sys.argv[1], time.monotonic(), 0
while not os.path.exists(stop):
    rounds += 1
    time.sleep(0.05)
print(json.dumps({"rounds": rounds, "seconds": time.monotonic() - started}))
"""


@pytest.mark.parametrize("name", sorted(LAB_HOSTS))
def test_docker_exec_reaches_each_host_by_platform_name_as_the_user_asked(name):
    release = labkit.docker_exec(name, ". /etc/os-release && echo $VERSION_CODENAME").stdout.strip()
    assert release == LAB_HOSTS[name]
    probe = 'echo "$(id -un) $LABKIT_PROBE $(pwd)"'
    who = labkit.docker_exec(name, ["sh", "-c", probe], env={"LABKIT_PROBE": "x y"}, user="nobody", workdir="/etc")
    assert who.stdout == "nobody x y /etc\n"
    assert labkit.docker_exec(name, "cat", input="from stdin\n").stdout == "from stdin\n"


def test_a_failing_command_fails_the_test_with_its_output_unless_unchecked():
    with pytest.raises(AssertionError, match=r"lab-trixie: echo out; echo err >&2; exit 3: rc=3[\s\S]*out[\s\S]*err"):
        labkit.docker_exec("lab-trixie", "echo out; echo err >&2; exit 3")
    assert labkit.docker_exec("lab-trixie", "exit 3", check=False).returncode == 3


def test_a_remote_script_runs_until_finished_and_answers_in_json():
    stop = labkit.stop_file("/run")
    script = labkit.RemoteScript("lab-bookworm", COUNTER, stop, stop_file=stop, warmup=1)
    figures = script.finish(cooldown=0.5)
    assert figures["rounds"] > 5 and figures["seconds"] >= 1.4, figures
    assert labkit.docker_exec("lab-bookworm", f"test -e {stop}").returncode == 0
    assert labkit.run_script("lab-trixie", "import json, sys; print(json.dumps(sys.argv[1:]))", "a", "b c") == [
        "a",
        "b c",
    ]


def test_a_converge_rerun_is_recapped_per_host_with_or_without_colour():
    run = labkit.play("converge.yml", timeout=300)  # jq is installed already: nothing to change
    assert run.rc == 0, run.tail()
    assert sorted(run.recap) == sorted(LAB_HOSTS), run.tail()
    assert all(counts["ok"] >= 1 for counts in run.recap.values()), run.recap
    assert run.changed == 0 and run.failed == 0, run.recap
    coloured = labkit.play(
        "converge.yml", timeout=300, env=labkit.ansible_env(ANSIBLE_FORCE_COLOR="1", ANSIBLE_NOCOLOR="0")
    )
    assert "\x1b[" in coloured.stdout
    assert coloured.recap == run.recap
    assert labkit.OUTPUTS[-2:] == [run.output, coloured.output]
