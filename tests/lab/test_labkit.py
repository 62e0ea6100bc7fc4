"""labkit, the Molecule scenarios' shared harness: its PLAY RECAP parser reads what ansible-playbook
really prints (with and without colour, host names with dashes, dots, underscores, addresses), its
runs say what they did, and its docker exec argv is what the scenarios mean."""

import importlib.util
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))
LABKIT = os.path.join(PROJECT, "molecule", "_shared", "labkit.py")

spec = importlib.util.spec_from_file_location("labkit", LABKIT)
labkit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(labkit)

# The end of a real ansible-core 2.19 run (default callback, yaml result format, ANSIBLE_NOCOLOR=1)
# over hosts that were unreachable, failed, rescued, ignored an error and skipped tasks. The debug
# message before the recap looks like a recap line and must not count.
PLAIN = """\
TASK [ansible.builtin.debug] ***************************************************
ok: [pg_backup-runner] =>
    msg: |-
        PLAY RECAP look-alike
        fake-host : ok=9 changed=9 unreachable=0 failed=0

TASK [ansible.builtin.fail] ****************************************************
skipping: [pg_backup-runner]
fatal: [a-very-long-host-name.with.dots.example.org]: FAILED! =>
    changed: false
    msg: ignored
...ignoring

PLAY RECAP *********************************************************************
10.0.1.20                  : ok=0    changed=0    unreachable=1    failed=0    skipped=0    rescued=0    ignored=0   
a-very-long-host-name.with.dots.example.org : ok=3    changed=1    unreachable=0    failed=0    skipped=2    rescued=0    ignored=1   
db.example.internal        : ok=1    changed=0    unreachable=0    failed=0    skipped=4    rescued=0    ignored=0   
nginx_lb-backend-1         : ok=2    changed=1    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0   
pg_backup-runner           : ok=3    changed=1    unreachable=0    failed=0    skipped=2    rescued=1    ignored=0   

"""  # noqa: E501, W291 - ansible pads every count, the last one too

# The same run with ANSIBLE_FORCE_COLOR=1: host names and every non-zero count wrapped in colour codes.
COLOURED = (
    "PLAY RECAP *********************************************************************\n"
    "\x1b[0;31m10.0.1.20\x1b[0m                  : ok=0    changed=0    \x1b[1;31munreachable=1   \x1b[0m "
    "failed=0    skipped=0    rescued=0    ignored=0   \n"
    "\x1b[0;33ma-very-long-host-name.with.dots.example.org\x1b[0m : \x1b[0;32mok=3   \x1b[0m "
    "\x1b[0;33mchanged=1   \x1b[0m unreachable=0    failed=0    \x1b[0;36mskipped=2   \x1b[0m rescued=0    "
    "\x1b[1;35mignored=1   \x1b[0m\n"
    "\x1b[0;32mdb.example.internal\x1b[0m        : \x1b[0;32mok=1   \x1b[0m changed=0    unreachable=0    "
    "failed=0    \x1b[0;36mskipped=4   \x1b[0m rescued=0    ignored=0   \n"
    "\x1b[0;31mnginx_lb-backend-1\x1b[0m         : \x1b[0;32mok=2   \x1b[0m \x1b[0;33mchanged=1   \x1b[0m "
    "unreachable=0    \x1b[0;31mfailed=1   \x1b[0m skipped=0    rescued=0    ignored=0   \n"
    "\x1b[0;33mpg_backup-runner\x1b[0m           : \x1b[0;32mok=3   \x1b[0m \x1b[0;33mchanged=1   \x1b[0m "
    "unreachable=0    failed=0    \x1b[0;36mskipped=2   \x1b[0m \x1b[0;32mrescued=1   \x1b[0m ignored=0   \n"
    "\n"
)

EXPECTED = {
    "10.0.1.20": dict(ok=0, changed=0, unreachable=1, failed=0, skipped=0, rescued=0, ignored=0),
    "a-very-long-host-name.with.dots.example.org": dict(
        ok=3, changed=1, unreachable=0, failed=0, skipped=2, rescued=0, ignored=1
    ),
    "db.example.internal": dict(ok=1, changed=0, unreachable=0, failed=0, skipped=4, rescued=0, ignored=0),
    "nginx_lb-backend-1": dict(ok=2, changed=1, unreachable=0, failed=1, skipped=0, rescued=0, ignored=0),
    "pg_backup-runner": dict(ok=3, changed=1, unreachable=0, failed=0, skipped=2, rescued=1, ignored=0),
}


@pytest.mark.parametrize("text", [PLAIN, COLOURED, PLAIN.replace("\n", "\r\n")], ids=["plain", "coloured", "crlf"])
def test_recap_is_read_host_by_host_with_every_count(text):
    assert labkit.parse_recap(text) == EXPECTED


def test_a_recap_looking_line_before_the_recap_does_not_count():
    text = "fake-host : ok=9 changed=9 unreachable=0 failed=0\n" + PLAIN
    assert "fake-host" not in labkit.parse_recap(text)


def test_what_follows_the_recap_block_is_not_part_of_it():
    text = PLAIN + "[WARNING]: something on stderr\nlate-host : ok=1 changed=1 unreachable=0 failed=0\n"
    assert labkit.parse_recap(text) == EXPECTED


def test_only_the_last_recap_counts():
    first = "PLAY RECAP ***\nold-host : ok=1 changed=5 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0\n\n"
    assert labkit.parse_recap(first + PLAIN) == EXPECTED


@pytest.mark.parametrize("text", ["", "PLAY [all] ***\nfatal: [db]: FAILED!\n", "PLAY RECAP ***\n\n"])
def test_no_recap_is_an_empty_recap(text):
    assert labkit.parse_recap(text) == {}


def test_run_totals_count_failures_and_unreachable_hosts():
    run = labkit.Run(2, PLAIN, 1.5)
    assert run.changed == 3
    assert run.failed == 2  # nginx_lb-backend-1 failed, 10.0.1.20 unreachable
    assert run.host("pg_backup-runner")["rescued"] == 1
    assert run.tail(20) == PLAIN[-20:]
    assert run.output == PLAIN and run.seconds == 1.5


def test_stdout_and_stderr_stay_apart_and_the_output_holds_both():
    run = labkit.Run(0, PLAIN, 0.1, stderr="[WARNING]: on stderr\n")
    assert run.stdout == PLAIN and run.stderr == "[WARNING]: on stderr\n"
    assert run.output == PLAIN + "[WARNING]: on stderr\n"
    assert run.recap == EXPECTED


def test_without_a_recap_totals_and_hosts_fail_rather_than_read_zero():
    run = labkit.Run(1, "ERROR! the playbook could not be found\n", 0.1)
    with pytest.raises(AssertionError, match="no PLAY RECAP"):
        assert run.changed == 0
    with pytest.raises(AssertionError, match="no PLAY RECAP"):
        assert run.failed == 0
    with pytest.raises(AssertionError, match="not in the PLAY RECAP"):
        run.host("db")


def test_docker_exec_argv_for_a_script_and_for_an_argv():
    assert labkit.exec_argv("lab-db", "echo $HOME") == ["docker", "exec", "lab-db", "sh", "-c", "echo $HOME"]
    argv = labkit.exec_argv(
        "lab-db", ["psql", "-c", "SELECT 1"], env={"PGPASSWORD": "x"}, user="postgres", workdir="/", stdin=True
    )
    assert argv == ["docker", "exec", "-i", "-e", "PGPASSWORD=x", "-u", "postgres", "-w", "/", "lab-db"] + [
        "psql",
        "-c",
        "SELECT 1",
    ]
    assert labkit.exec_argv("lab-db", "set -o pipefail", sh="bash")[-3:] == ["bash", "-c", "set -o pipefail"]


def test_a_failed_command_fails_with_what_it_printed():
    with pytest.raises(AssertionError, match=r"rc=3[\s\S]*to stdout[\s\S]*to stderr"):
        labkit.run([sys.executable, "-c", "import sys; print('to stdout'); sys.stderr.write('to stderr'); sys.exit(3)"])
    assert labkit.run(["false"], check=False).returncode == 1


def test_json_output_is_the_whole_stdout_or_its_last_line():
    assert labkit.parse_json_output('{"ok": 3}\n') == {"ok": 3}
    assert labkit.parse_json_output('progress...\n{"ok": 3}\n') == {"ok": 3}
    with pytest.raises(AssertionError, match="printed no JSON"):
        labkit.parse_json_output("Traceback ...\n")


def test_ansible_env_points_at_the_project_and_turns_colour_off(monkeypatch):
    monkeypatch.setenv("ANSIBLE_FORCE_COLOR", "1")
    env = labkit.ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    assert env["ANSIBLE_CONFIG"] == os.path.join(PROJECT, "ansible.cfg")
    assert env["ANSIBLE_COLLECTIONS_PATH"] == os.path.join(PROJECT, ".collections")
    assert env["ANSIBLE_NOCOLOR"] == "1" and env["ANSIBLE_FORCE_COLOR"] == "0"
    assert env["ANSIBLE_CALLBACK_RESULT_FORMAT"] == "json"


def test_playbooks_run_with_molecules_inventory_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLECULE_INVENTORY_FILE", "/srv/molecule/inventory")
    monkeypatch.setenv("MOLECULE_SCENARIO_DIRECTORY", str(tmp_path))
    argv = labkit.playbook_argv("drill.yml", "-e", "x=1")
    assert argv[1:] == ["-i", "/srv/molecule/inventory", str(tmp_path / "drill.yml"), "-e", "x=1"]
    argv = labkit.playbook_argv("/abs/site.yml", inventory=["/a", "/b"])
    assert argv[1:] == ["-i", "/a", "-i", "/b", "/abs/site.yml"]
    assert labkit.playbook_argv("/abs/site.yml", inventory="/lab")[1:] == ["-i", "/lab", "/abs/site.yml"]
    monkeypatch.delenv("MOLECULE_INVENTORY_FILE")
    with pytest.raises(AssertionError, match="MOLECULE_INVENTORY_FILE is not set"):
        labkit.playbook_argv("drill.yml")


class FakeReporter:
    def __init__(self):
        self.lines = []

    def write_sep(self, sep, title):
        self.lines.append(f"== {title}")

    def write_line(self, line):
        self.lines.append(line)


def test_figures_and_notes_are_printed_at_the_end(monkeypatch):
    monkeypatch.setattr(labkit, "FIGURES", {})
    monkeypatch.setattr(labkit, "SECTIONS", {})
    reporter = FakeReporter()
    labkit.terminal_summary("demo figures")(reporter)
    assert reporter.lines == []  # nothing measured, nothing printed
    labkit.record("renewal under load: requests", 42)
    labkit.note("testssl.sh summary", "OK       TLS1_3   offered")
    labkit.print_figures(reporter, "demo figures", width=30)
    assert reporter.lines == [
        "== demo figures",
        f"{'renewal under load: requests':<30} 42",
        "== testssl.sh summary",
        "OK       TLS1_3   offered",
    ]


LOCAL_INVENTORY = """\
[lab]
pg_backup-runner
db.example.internal
[lab:vars]
ansible_connection=local
ansible_python_interpreter={python}
"""

LOCAL_PLAYBOOK = """\
- name: Something to recap
  hosts: all
  gather_facts: false
  tasks:
    - name: A change on one host
      ansible.builtin.command: "true"
      when: inventory_hostname == 'pg_backup-runner'
    - name: A failure on the other
      ansible.builtin.fail:
        msg: as planned
      when: inventory_hostname == 'db.example.internal'
"""


@pytest.mark.parametrize("colour", ["0", "1"], ids=["plain", "forced-colour"])
def test_a_real_playbook_run_is_recapped(tmp_path, colour):
    if not shutil.which(labkit.ansible_bin()):
        pytest.skip("no ansible-playbook")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(LOCAL_INVENTORY.format(python=sys.executable))
    playbook = tmp_path / "play.yml"
    playbook.write_text(LOCAL_PLAYBOOK)
    env = labkit.ansible_env(ANSIBLE_FORCE_COLOR=colour, ANSIBLE_NOCOLOR="0" if colour == "1" else "1")
    run = labkit.play(str(playbook), inventory=str(inventory), cwd=str(tmp_path), timeout=120, env=env)
    assert run.rc == 2, run.tail()
    assert ("\x1b[" in run.stdout) == (colour == "1")
    assert run.recap["pg_backup-runner"] == dict(
        ok=1, changed=1, unreachable=0, failed=0, skipped=1, rescued=0, ignored=0
    )
    assert run.host("db.example.internal")["failed"] == 1
    assert run.changed == 1 and run.failed == 1
    assert labkit.OUTPUTS[-1] == run.output
    assert run.command.startswith("ansible-playbook -i ")
