# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: staged_files
short_description: Write rendered files into a staging tree and say which differ from the live tree
version_added: "0.1.0"
description:
  - The first half of "test before it goes live" for a daemon whose configuration is several files
    (nginx_lb renders its five into a tree that mirrors C(/etc/nginx), tests that tree with
    C(nginx -t) and only then copies the files that differ into place).
  - In one call, for every file - writes the given content under O(staging_dir) when it differs from
    what is there (atomically, with O(owner), O(group) and O(mode)), and compares the content with
    the same path under O(live_dir). One call instead of one template task per file and a compare
    step is what makes a run that changes nothing cheap.
  - Nothing under O(live_dir) is ever written.
  - Compares with the live file rather than trusting "changed", so a run interrupted between staging
    and going live still puts the staged files live next time.
author:
  - ywmessaging.scaling contributors (@ywmessaging)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: >-
      Writes nothing; reports changed when a staged file would change or a live file differs, and
      returns O(live_dir)'s differences as a real run would.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One diff per file that differs from the live one (live content before, new content after).
options:
  files:
    description: The files, each a path relative to both trees and its full content.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Relative path, without C(..) components, for example C(conf.d/upstream.conf).
        type: str
        required: true
      content:
        description: The file's full content (the output of a template lookup, for instance).
        type: str
        required: true
  staging_dir:
    description: Absolute path of the staging tree; created (with parents, mode 0755) when missing.
    type: path
    required: true
  live_dir:
    description: Absolute path of the live tree the staged files are compared with. Never written.
    type: path
    required: true
  owner:
    description: Owner of staged files.
    type: str
    default: root
  group:
    description: Group of staged files.
    type: str
    default: root
  mode:
    description: Mode of staged files, as an octal string.
    type: str
    default: "0644"
notes:
  - Contents are compared byte for byte as UTF-8.
"""

EXAMPLES = r"""
- name: Render the configuration into the staging tree and compare it with the live one
  ywmessaging.scaling.staged_files:
    staging_dir: /etc/nginx/ywmessaging-staging
    live_dir: /etc/nginx
    files:
      - path: nginx.conf
        content: "{{ lookup('ansible.builtin.template', 'nginx.conf.j2') }}"
      - path: ywmessaging/upstream.conf
        content: "{{ lookup('ansible.builtin.template', 'upstream.conf.j2') }}"
  register: staged

- name: Test the staged tree, then copy what differs into place
  ansible.builtin.command: nginx -t -c /etc/nginx/ywmessaging-staging/nginx.conf
  when: staged.differ | length > 0
"""

RETURN = r"""
staged:
  description: Files whose staged copy was written (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [ywmessaging/upstream.conf]
differ:
  description: Files whose new content differs from the live file, missing live files included.
  returned: always
  type: list
  elements: str
  sample: [ywmessaging/upstream.conf]
new:
  description: Files that have no live counterpart yet (a subset of RV(differ)).
  returned: always
  type: list
  elements: str
  sample: []
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes


def relative_path_error(path):
    """Why ``path`` is not a safe relative path inside a tree, or None."""
    if not path or path.startswith("/") or "\0" in path:
        return "must be a non-empty relative path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "must not contain empty, '.' or '..' components"
    return None


def read_bytes(path):
    """The file's bytes, or None when there is no such regular file."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def plan(files, staging_dir, live_dir):
    """For each file: (path, wanted bytes, staged bytes or None, live bytes or None)."""
    result = []
    for item in files:
        wanted = to_bytes(item["content"], errors="surrogate_or_strict")
        result.append(
            (
                item["path"],
                wanted,
                read_bytes(os.path.join(staging_dir, item["path"])),
                read_bytes(os.path.join(live_dir, item["path"])),
            )
        )
    return result


def write_atomically(module, path, data, mode):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".staged-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(path=dict(type="str", required=True), content=dict(type="str", required=True)),
            ),
            staging_dir=dict(type="path", required=True),
            live_dir=dict(type="path", required=True),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
            mode=dict(type="str", default="0644"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    errors = []
    for name in ("staging_dir", "live_dir"):
        if not os.path.isabs(params[name]):
            errors.append("%s must be an absolute path, got %r" % (name, params[name]))
    if os.path.normpath(params["staging_dir"]) == os.path.normpath(params["live_dir"]):
        errors.append("staging_dir and live_dir must differ")
    seen = set()
    for item in params["files"]:
        why = relative_path_error(item["path"])
        if why:
            errors.append("files: path %r %s" % (item["path"], why))
        elif item["path"] in seen:
            errors.append("files: path %r is given twice" % item["path"])
        seen.add(item["path"])
    try:
        mode = int(params["mode"], 8)
        if not 0 <= mode <= 0o7777:
            raise ValueError
    except ValueError:
        errors.append("mode must be an octal string such as 0644, got %r" % params["mode"])
    if errors:
        module.fail_json(msg="staged_files: " + "; ".join(errors))

    planned = plan(params["files"], params["staging_dir"], params["live_dir"])
    wanted = dict((path, content) for path, content, _current, _live in planned)
    live = dict((path, content) for path, _wanted, _current, content in planned)
    staged = [path for path, content, current, _live in planned if current != content]
    differ = [path for path in wanted if live[path] != wanted[path]]
    new = [path for path in wanted if live[path] is None]
    changed = bool(staged) or (module.check_mode and bool(differ))
    result = dict(changed=changed, staged=staged, differ=differ, new=new)

    if module._diff:
        result["diff"] = [
            dict(
                before_header=os.path.join(params["live_dir"], path),
                after_header=os.path.join(params["live_dir"], path),
                before=(live[path] or b"").decode("utf-8", "replace"),
                after=wanted[path].decode("utf-8", "replace"),
            )
            for path in differ
        ]

    if not module.check_mode:
        staging_dir = params["staging_dir"]
        for path in staged:
            write_atomically(module, os.path.join(staging_dir, path), wanted[path], mode)
        # Ownership and mode of every staged file, changed or not (a hand-edited mode is put back).
        for path in wanted:
            file_args = dict(
                path=os.path.join(staging_dir, path),
                owner=params["owner"],
                group=params["group"],
                mode=params["mode"],
            )
            if module.set_fs_attributes_if_different(module.load_file_common_arguments(file_args), False):
                result["changed"] = True
                if path not in result["staged"]:
                    result["staged"].append(path)

    module.exit_json(**result)


if __name__ == "__main__":
    main()
