"""ywmessaging.scaling.staged_files on this machine's filesystem (the module runs through the real
`ansible` CLI, on Debian's python3): what nginx_lb's configure step relies on."""

import os
import stat

import pytest

FILES = [
    {"path": "nginx.conf", "content": "events {}\nhttp { include ywm/upstream.conf; }\n"},
    {"path": "ywm/upstream.conf", "content": "upstream api {\n    server 10.0.0.1:3000;\n}\n"},
]


@pytest.fixture
def trees(tmp_path):
    live, staging = tmp_path / "live", tmp_path / "live" / "staging"
    live.mkdir()
    return live, staging


def args(live, staging, files=None, **extra):
    owner = {"owner": str(os.getuid()), "group": str(os.getgid())}
    return dict({"staging_dir": str(staging), "live_dir": str(live), "files": files or FILES}, **owner, **extra)


def put_live(live, staging, path):
    (live / path).parent.mkdir(parents=True, exist_ok=True)
    (live / path).write_bytes((staging / path).read_bytes())


def test_stages_every_file_and_names_those_that_differ_from_the_live_tree(trees, run_module):
    live, staging = trees
    (live / "nginx.conf").write_text("events {}\nhttp { old; }\n")
    first = run_module("ywmessaging.scaling.staged_files", args(live, staging))
    assert first["_rc"] == 0 and first["changed"] is True, first
    assert first["staged"] == ["nginx.conf", "ywm/upstream.conf"]
    assert first["differ"] == ["nginx.conf", "ywm/upstream.conf"] and first["new"] == ["ywm/upstream.conf"]
    for item in FILES:
        assert (staging / item["path"]).read_text() == item["content"]
        assert stat.S_IMODE((staging / item["path"]).stat().st_mode) == 0o644
    assert (live / "nginx.conf").read_text() == "events {}\nhttp { old; }\n"  # the live tree is never written
    assert not (live / "ywm" / "upstream.conf").exists()

    # staged but not live yet (a run stopped before going live): nothing to stage, still different
    again = run_module("ywmessaging.scaling.staged_files", args(live, staging))
    assert again["changed"] is False and again["staged"] == [], again
    assert again["differ"] == ["nginx.conf", "ywm/upstream.conf"], again

    for item in FILES:
        put_live(live, staging, item["path"])
    settled = run_module("ywmessaging.scaling.staged_files", args(live, staging))
    assert (settled["changed"], settled["staged"], settled["differ"], settled["new"]) == (False, [], [], [])


def test_a_changed_file_is_restaged_and_a_hand_changed_mode_put_back(trees, run_module):
    live, staging = trees
    run_module("ywmessaging.scaling.staged_files", args(live, staging))
    for item in FILES:
        put_live(live, staging, item["path"])
    (staging / "nginx.conf").chmod(0o600)
    files = [FILES[0], {"path": FILES[1]["path"], "content": FILES[1]["content"].replace("10.0.0.1", "10.0.0.2")}]
    result = run_module("ywmessaging.scaling.staged_files", args(live, staging, files))
    assert result["changed"] is True, result
    assert sorted(result["staged"]) == ["nginx.conf", "ywm/upstream.conf"] and result["differ"] == ["ywm/upstream.conf"]
    assert "10.0.0.2" in (staging / "ywm" / "upstream.conf").read_text()
    assert stat.S_IMODE((staging / "nginx.conf").stat().st_mode) == 0o644


def test_check_mode_writes_nothing_and_diff_shows_the_live_change(trees, run_module):
    live, staging = trees
    (live / "nginx.conf").write_text(FILES[0]["content"])
    result = run_module("ywmessaging.scaling.staged_files", args(live, staging), check=True, diff=True)
    assert result["_rc"] == 0 and result["changed"] is True, result
    assert result["differ"] == ["ywm/upstream.conf"] and result["new"] == ["ywm/upstream.conf"]
    assert not staging.exists()
    (diff,) = result["diff"]
    assert diff["after_header"].endswith("ywm/upstream.conf") and diff["before"] == ""
    assert diff["after"] == FILES[1]["content"]


@pytest.mark.parametrize(
    "files, extra, says",
    [
        ([{"path": "../escape.conf", "content": "x"}], {}, "path '../escape.conf' must not contain"),
        ([{"path": "/etc/passwd", "content": "x"}], {}, "path '/etc/passwd' must be a non-empty relative path"),
        ([FILES[0], FILES[0]], {}, "path 'nginx.conf' is given twice"),
        (FILES, {"mode": "rw-r--r--"}, "mode must be an octal string such as 0644, got 'rw-r--r--'"),
    ],
    ids=["dot-dot", "absolute", "twice", "symbolic mode"],
)
def test_bad_input_is_refused_before_anything_is_written(trees, run_module, files, extra, says):
    live, staging = trees
    result = run_module("ywmessaging.scaling.staged_files", args(live, staging, files, **extra))
    assert result.get("failed") is True and says in result["msg"], result
    assert not staging.exists() and not (live.parent / "escape.conf").exists()


def test_the_live_tree_cannot_be_the_staging_tree(trees, run_module):
    live, _staging = trees
    result = run_module("ywmessaging.scaling.staged_files", args(live, live))
    assert result.get("failed") is True and "staging_dir and live_dir must differ" in result["msg"], result
