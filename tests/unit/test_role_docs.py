# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/tooling/role_docs.py: README variable tables rendered from meta/argument_specs.yml, and
--check failing on every kind of drift, on tiny fake roles."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tooling" / "role_docs.py"
_spec = importlib.util.spec_from_file_location("role_docs", SCRIPT)
role_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_docs)

SPEC = """\
---
argument_specs:
  main:
    short_description: Serve I(things) with C(thingd)
    options:
      demo_port:
        type: int
        default: 8080
        description: Port C(thingd) listens on.
      demo_mode:
        type: str
        default: fast
        choices: [fast, safe]
        description:
          - C(fast) - no fsync.
          - C(safe) - fsync every write.
      demo_password:
        type: str
        default: hunter2
        no_log: true
        description: Admin password, from vault.
      demo_token:
        type: str
        required: true
        no_log: true
        description: API token.
      demo_pools:
        type: list
        elements: dict
        default: []
        description: One entry per pool.
        options:
          name:
            type: str
            required: true
            description: Pool name.
          size:
            type: int
            default: 10
            description: Server connections.
          limits:
            type: dict
            description: Per-pool limits.
            options:
              max_clients:
                type: int
                description: Clients at most.
  stop:
    short_description: Stop thingd
    options:
      demo_port:
        type: int
        default: 8080
        description: Port C(thingd) listens on.
      demo_grace:
        type: int
        default: 5
        description: Seconds to wait.
"""

DEFAULTS = """\
---
# documented in meta/argument_specs.yml / README
demo_port: 8080
demo_mode: fast
demo_password: hunter2
demo_token: ""
demo_pools: []
#  - name: app
#    size: 20
demo_grace: 5
__demo_internal: 1
"""

README = """\
# demo

Purpose, kept as written.

## Variables

{section}
## Tested

By hand.
"""


def make_role(roles: Path, name: str = "demo", spec: str = SPEC, defaults: str = DEFAULTS, readme=None) -> Path:
    role = roles / name
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(spec)
    (role / "defaults" / "main.yml").write_text(defaults)
    if readme is None:
        readme = README.format(section=role_docs.BEGIN + "\nold table\n" + role_docs.END + "\n")
    (role / "README.md").write_text(readme)
    return role


def run(roles: Path, *args: str) -> int:
    return role_docs.main(["--roles-dir", str(roles), *args])


@pytest.fixture
def roles(tmp_path):
    return tmp_path / "roles"


def section_of(role: Path) -> str:
    text = (role / "README.md").read_text()
    return text[text.index(role_docs.BEGIN) : text.index(role_docs.END)]


# --- rendering ------------------------------------------------------------------------------------


def test_a_table_per_entry_point_in_spec_order_with_every_column(roles):
    role = make_role(roles)
    assert run(roles) == 0
    section = section_of(role)
    assert section.index("### Entry point `main`") < section.index("### Entry point `stop` (`tasks_from: stop`)")
    assert "| variable | type | default | required | choices | description |" in section
    assert "Serve *things* with `thingd`" in section
    assert "| `demo_port` | int | `8080` |  |  | Port `thingd` listens on. |" in section
    assert "| `demo_mode` | str | `fast` |  | `fast`, `safe` | `fast` - no fsync.<br>`safe` - fsync every write. |" in (
        section
    )
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    assert rows[:5] == ["| `demo_port`", "| `demo_mode`", "| `demo_password`", "| `demo_token`", "| `demo_pools`"]


def test_nested_options_are_sub_rows_under_their_variable(roles):
    role = make_role(roles)
    run(roles)
    section = section_of(role)
    assert "| `demo_pools` | list of dict | `[]` |  |  | One entry per pool. |" in section
    assert "| `demo_pools[].name` | str |  | yes |  | Pool name. |" in section
    assert "| `demo_pools[].size` | int | `10` |  |  | Server connections. |" in section
    assert "| `demo_pools[].limits` | dict |" in section
    assert "| `demo_pools[].limits.max_clients` | int |  |  |  | Clients at most. |" in section
    order = [section.index(f"`demo_pools{s}`") for s in ("", "[].name", "[].size", "[].limits.max_clients")]
    assert order == sorted(order)


def test_an_option_shared_with_an_earlier_entry_point_is_named_not_repeated(roles):
    role = make_role(roles)
    run(roles)
    stop = section_of(role).split("### Entry point `stop`")[1]
    assert "Takes these options as documented for `main`: `demo_port`." in stop
    assert "| `demo_port` |" not in stop
    assert "| `demo_grace` | int | `5` |" in stop


def test_long_defaults_go_below_the_table_as_yaml(roles):
    pools = [{"name": f"pool{i}", "size": i} for i in range(6)]
    spec = role_docs.yaml.safe_load(SPEC)
    spec["argument_specs"]["main"]["options"]["demo_pools"]["default"] = pools
    defaults = DEFAULTS.replace("demo_pools: []\n", role_docs.yaml.safe_dump({"demo_pools": pools}))
    role = make_role(roles, spec="---\n" + role_docs.yaml.safe_dump(spec, sort_keys=False), defaults=defaults)
    assert run(roles) == 0
    section = section_of(role)
    assert "| `demo_pools` | list of dict | *see below* |" in section
    assert "Default of `demo_pools`:\n\n```yaml\ndemo_pools:\n  - {name: pool0, size: 0}\n" in section


@pytest.mark.parametrize(
    "markup, markdown",
    [
        ("I(italic) and B(bold)", "*italic* and **bold**"),
        ("C(nginx -t) reloads", "`nginx -t` reloads"),
        ("see U(https://example.org/x)", "see <https://example.org/x>"),
        ("the L(runbook, https://example.org/rb) says", "the [runbook](https://example.org/rb) says"),
        ("V(a\\)b) is a value", "`a)b` is a value"),
        ("O(demo_port) and O(ns.coll.mod#module:port=5432)", "`demo_port` and `port=5432`"),
        ("RV(changed), E(PGPASSFILE), M(ansible.builtin.uri)", "`changed`, `PGPASSFILE`, `ansible.builtin.uri`"),
        ("P(ns.coll.filt#filter)", "`ns.coll.filt`"),
        ("C(`tick`)", "`` `tick` ``"),
        ("a <name> *star*", "a &lt;name> \\*star\\*"),
        ("IC(x) is no markup, nor C(unclosed", "IC(x) is no markup, nor C(unclosed"),
        ("one HORIZONTALLINE two", "one <hr> two"),
    ],
)
def test_markup_becomes_markdown(markup, markdown):
    assert role_docs.convert_markup(markup) == markdown


def test_list_and_multi_line_descriptions_become_one_cell():
    assert role_docs.description_text(["First\n  line.", "I(Second)."]) == "First line.<br>*Second*."
    assert role_docs.description_text("plain") == "plain"
    assert role_docs.description_text(None) == ""
    assert role_docs.cell("a | b `c|d`") == "a \\| b `c\\|d`"


def test_secrets_are_marked_and_their_default_never_printed(roles):
    role = make_role(roles)
    run(roles)
    text = (role / "README.md").read_text()
    assert "hunter2" not in text
    assert "| `demo_password` | str | *(secret, not shown)* |  |  | **Secret** (`no_log`). Admin password" in text
    assert "| `demo_token` | str |  | yes |  | **Secret** (`no_log`). API token. |" in text


def test_a_secret_mismatch_is_reported_without_its_value(roles, capsys):
    make_role(roles, defaults=DEFAULTS.replace("demo_password: hunter2", "demo_password: s3cr3t"))
    assert run(roles, "--check") == 1
    err = capsys.readouterr().err
    assert "demo_password" in err
    assert "hunter2" not in err and "s3cr3t" not in err


# --- the README around the section ------------------------------------------------------------------


def test_prose_outside_the_markers_is_kept_and_rendering_twice_changes_nothing(roles):
    role = make_role(roles)
    assert run(roles) == 0
    first = (role / "README.md").read_text()
    assert first.startswith("# demo\n\nPurpose, kept as written.\n\n## Variables\n\n" + role_docs.BEGIN + "\n")
    assert first.endswith(role_docs.END + "\n\n## Tested\n\nBy hand.\n")
    assert "old table" not in first
    assert run(roles) == 0
    assert (role / "README.md").read_text() == first
    assert run(roles, "--check") == 0


def test_without_markers_the_section_goes_under_the_variables_heading(roles):
    role = make_role(roles, readme="# demo\n\n## Variables\n\n| hand | made |\n")
    assert run(roles) == 0
    text = (role / "README.md").read_text()
    assert text.index("## Variables") < text.index(role_docs.BEGIN) < text.index(role_docs.END)
    assert text.index(role_docs.END) < text.index("| hand | made |")


def test_broken_markers_are_an_error_not_a_rewrite(roles, capsys):
    role = make_role(roles, readme=f"# demo\n\n{role_docs.BEGIN}\nno end\n")
    assert run(roles) == 1
    assert "exactly one BEGIN" in capsys.readouterr().err
    assert (role / "README.md").read_text() == f"# demo\n\n{role_docs.BEGIN}\nno end\n"


# --- drift: --check -----------------------------------------------------------------------------------


def test_check_fails_on_a_stale_readme_prints_a_diff_and_writes_nothing(roles, capsys):
    role = make_role(roles)
    before = (role / "README.md").read_text()
    assert run(roles, "--check") == 1
    out, err = capsys.readouterr()
    assert "--- a/roles/demo/README.md" in out and "+++ b/roles/demo/README.md" in out
    assert "-old table" in out
    assert "+| `demo_port` | int | `8080` |" in out
    assert "out of date: demo" in err
    assert (role / "README.md").read_text() == before


def test_check_fails_after_someone_edits_the_spec(roles):
    role = make_role(roles)
    run(roles)
    spec = role / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace("Seconds to wait.", "Seconds to wait for a clean stop."))
    assert run(roles, "--check") == 1


def test_check_fails_when_the_spec_default_differs_from_defaults(roles, capsys):
    make_role(roles, defaults=DEFAULTS.replace("demo_port: 8080", "demo_port: 9090"))
    assert run(roles) == 1  # the README is written, the disagreement still fails the run
    assert run(roles, "--check") == 1
    err = capsys.readouterr().err
    assert "demo_port (entry point main): the spec's default 8080 differs from defaults/main.yml's 9090" in err
    assert err.count("demo_port") == 2  # once per run, though `stop` takes it too


def test_check_fails_on_a_default_no_entry_point_documents(roles, capsys):
    make_role(roles, defaults=DEFAULTS + "demo_extra: 1\n")
    run(roles)
    assert run(roles, "--check") == 1
    err = capsys.readouterr().err
    assert "demo_extra is set in defaults/main.yml but is no option of any entry point" in err
    assert "__demo_internal" not in err


def test_check_fails_when_defaults_set_what_the_spec_gives_no_default(roles, capsys):
    spec = SPEC.replace("        default: 5\n", "")
    make_role(roles, spec=spec)
    run(roles)
    assert run(roles, "--check") == 1
    assert "demo_grace (entry point stop): defaults/main.yml sets it to 5 but the spec has no `default`" in (
        capsys.readouterr().err
    )


def test_check_fails_when_a_required_variable_has_a_real_default(roles, capsys):
    make_role(roles, defaults=DEFAULTS.replace('demo_token: ""', "demo_token: abc"))
    run(roles)
    assert run(roles, "--check") == 1
    err = capsys.readouterr().err
    assert "demo_token (entry point main): is required in the spec" in err
    assert "abc" not in err


@pytest.mark.parametrize(
    "spec_default, default",
    [("3", "3.0"), ("[a, b]", "[a, b]"), ("{}", "{}"), ('"{{ x | default(1) }}"', "'{{ x | default(1) }}'")],
)
def test_equal_values_in_either_yaml_spelling_pass(roles, spec_default, default):
    spec = SPEC.replace("        default: 5\n", f"        default: {spec_default}\n")
    make_role(roles, spec=spec, defaults=DEFAULTS.replace("demo_grace: 5", f"demo_grace: {default}"))
    run(roles)
    assert run(roles, "--check") == 0


@pytest.mark.parametrize("spec_default, default", [("true", "1"), ("'5'", "5"), ("[a, b]", "[b, a]")])
def test_values_ansible_would_tell_apart_are_a_mismatch(spec_default, default):
    assert not role_docs.same_value(_yaml(spec_default), _yaml(default))


def _yaml(text):
    return role_docs.yaml.safe_load(text)


def test_null_in_defaults_matches_a_spec_without_default(roles):
    spec = SPEC.replace("        default: 5\n", "")
    make_role(roles, spec=spec, defaults=DEFAULTS.replace("demo_grace: 5", "demo_grace: null"))
    run(roles)
    assert run(roles, "--check") == 0


def test_only_the_named_roles_are_checked(roles):
    make_role(roles, "good")
    make_role(roles, "stale")
    run(roles, "good")
    assert run(roles, "--check", "good") == 0
    assert run(roles, "--check") == 1


def test_an_unknown_role_is_a_usage_error(roles):
    make_role(roles)
    with pytest.raises(SystemExit) as exc:
        run(roles, "nope")
    assert exc.value.code == 2


def test_a_role_without_spec_is_an_error(roles, capsys):
    make_role(roles)
    (roles / "demo" / "meta" / "argument_specs.yml").unlink()
    assert run(roles, "--check") == 1
    assert "demo: no meta/argument_specs.yml" in capsys.readouterr().err
