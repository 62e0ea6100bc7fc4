# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Dotted paths into JSON bodies (``checks.database``, ``items.0.state``, ``db\\.primary``) and
the type-strict comparison of an expected value from a task with a value found there."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re


def split_path(path):
    """Split a dotted path into keys; ``\\.`` is a literal dot inside a key."""
    return [part.replace("\0", ".") for part in path.replace("\\.", "\0").split(".")]


def path_error(path):
    """Return why a dotted path is unusable, or None."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if "" in split_path(path):
        return "has an empty key (two dots in a row, or a leading/trailing dot)"
    return None


def lookup(data, path):
    """Follow a dotted path through dicts and lists. Returns (found, value)."""
    current = data
    for key in split_path(path):
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and re.match(r"^-?\d+$", key) and -len(current) <= int(key) < len(current):
            current = current[int(key)]
        else:
            return False, None
    return True, current


def values_match(expected, actual):
    """Compare an expected value from the task with a value from a JSON body.

    Types matter (``true`` is not ``1``), except that a string expectation matches a
    scalar of another type by its JSON spelling, so ``ready: "true"`` given as a
    ``key=value`` string still matches ``{"ready": true}``.
    """
    if isinstance(expected, str) and not isinstance(actual, str):
        return (actual is None or isinstance(actual, (bool, int, float))) and expected == json.dumps(actual)
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return set(expected) == set(actual) and all(values_match(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(values_match(e, a) for e, a in zip(expected, actual))
    return type(expected) is type(actual) and expected == actual


def show(value):
    """A value as it reads in JSON, for messages."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)
