# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for PgBouncer's configuration: the auth file, the pool budget and which running settings
differ from the wanted ones.

Documentation: one YAML file per filter next to this one (``pgbouncer_userlist.yml``, ...). The
secrets come from ``module_utils/pg_secrets.py`` (errors never contain a secret); the running
settings are the ``config`` rows the ``pgbouncer_stats`` module reads from the admin console.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pg_secrets

AUTH_TYPES = ("scram-sha-256", "md5")


def _quote(value):
    return '"%s"' % value.replace('"', '""')


def userlist_secret(user, auth_type, salt_seed=None, iterations=pg_secrets.DEFAULT_ITERATIONS):
    """The secret to store in PgBouncer's auth_file for one user entry."""
    name = user.get("name")
    if not name:
        raise AnsibleFilterError("pgbouncer_userlist: an entry has no name")
    verifier = user.get("verifier")
    password = user.get("password")
    if verifier:
        kind = pg_secrets.secret_kind(verifier)
        if kind == "plain":
            raise AnsibleFilterError(
                "pgbouncer_userlist: the verifier of user %s is neither a SCRAM-SHA-256 verifier nor an md5 hash" % name
            )
        if auth_type == "scram-sha-256" and kind != "scram-sha-256":
            raise AnsibleFilterError(
                "pgbouncer_userlist: user %s has an md5 hash, which auth_type scram-sha-256 cannot use" % name
            )
        return verifier
    if not password:
        raise AnsibleFilterError("pgbouncer_userlist: user %s has neither password nor verifier" % name)
    if user.get("plaintext"):
        return password
    try:
        return pg_secrets.stored_secret(password, name, auth_type, salt_seed=salt_seed, iterations=iterations)
    except pg_secrets.SecretError as exc:
        raise AnsibleFilterError("pgbouncer_userlist: %s" % exc) from None


def pgbouncer_userlist(users, auth_type="scram-sha-256", salt_seed=None, iterations=pg_secrets.DEFAULT_ITERATIONS):
    """PgBouncer auth_file text for a list of user entries (see pgbouncer_userlist.yml)."""
    if auth_type not in AUTH_TYPES:
        raise AnsibleFilterError("pgbouncer_userlist: auth_type must be one of %s" % ", ".join(AUTH_TYPES))
    seen = set()
    lines = []
    for user in users or []:
        if not isinstance(user, dict):
            raise AnsibleFilterError("pgbouncer_userlist: every entry must be a dict with name and password/verifier")
        name = user.get("name")
        if name in seen:
            raise AnsibleFilterError("pgbouncer_userlist: user %s is listed twice" % name)
        seen.add(name)
        lines.append("%s %s\n" % (_quote(str(name)), _quote(userlist_secret(user, auth_type, salt_seed, iterations))))
    return "".join(lines)


def _setting_text(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def _normal(key, value):
    """Comparable form of a setting: numbers as numbers (unix_socket_mode in octal), else trimmed text."""
    text = _setting_text(value)
    if key == "unix_socket_mode" and re.match(r"^0[0-7]+$", text):
        return int(text, 8)
    if re.match(r"^-?[0-9]+$", text):
        return int(text)
    if re.match(r"^-?[0-9]+\.[0-9]+$", text):
        return float(text)
    return text


def show_config(current):
    """{key: (value, default)} from SHOW CONFIG rows: dicts with key, value and default, as the
    pgbouncer_stats module returns them in ``config``."""
    rows = {}
    for row in current:
        if not isinstance(row, Mapping) or not all(column in row for column in ("key", "value", "default")):
            raise AnsibleFilterError(
                "pgbouncer_settings_diff: expects SHOW CONFIG rows (dicts with key, value and default, the config "
                "of ywmessaging.scaling.pgbouncer_stats), got %r" % (row,)
            )
        if row["key"]:
            rows[str(row["key"]).strip().lower()] = (row["value"], row["default"])
    return rows


def pgbouncer_settings_diff(current, settings, keys=None):
    """Keys whose running value differs from ``settings`` (see pgbouncer_settings_diff.yml).

    ``current`` is PgBouncer's SHOW CONFIG as ``ywmessaging.scaling.pgbouncer_stats`` returns it
    with ``show: [config]``: one dict per setting with key, value, default (and changeable). A key
    missing from ``settings`` is expected at its default; keys this PgBouncer does not know are
    ignored.
    """
    if not isinstance(settings, dict):
        raise AnsibleFilterError("pgbouncer_settings_diff: settings must be a dict")
    if current is None or isinstance(current, (str, bytes, Mapping)):
        raise AnsibleFilterError(
            "pgbouncer_settings_diff: expects the list of SHOW CONFIG rows (config of "
            "ywmessaging.scaling.pgbouncer_stats), got %s" % type(current).__name__
        )
    running = show_config(current)
    if not running:
        raise AnsibleFilterError("pgbouncer_settings_diff: no SHOW CONFIG rows to compare with")
    wanted = dict((str(k).lower(), v) for k, v in settings.items())
    names = [str(k).lower() for k in keys] if keys is not None else sorted(running)
    changed = []
    for key in names:
        if key not in running:
            continue
        value, default = running[key]
        if _normal(key, value) != _normal(key, wanted.get(key, default)):
            changed.append(key)
    return changed


def _int(value, what):
    if isinstance(value, bool):
        raise AnsibleFilterError("pgbouncer_pool_plan: %s must be a number, got %r" % (what, value))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("pgbouncer_pool_plan: %s must be a number, got %r" % (what, value)) from None


def pgbouncer_pool_plan(databases, default_pool_size, reserve_pool_size, max_db_connections=0, pool_users=1):
    """How many server connections each database entry can open (see pgbouncer_pool_plan.yml)."""
    default_pool_size = _int(default_pool_size, "default_pool_size")
    reserve_pool_size = _int(reserve_pool_size, "reserve_pool_size")
    max_db_connections = _int(max_db_connections or 0, "max_db_connections")
    unbounded_users = pool_users is None or (not isinstance(pool_users, bool) and _int(pool_users, "pool_users") < 0)
    users = None if unbounded_users else _int(pool_users, "pool_users")
    plan = []
    total = 0
    for db in databases or []:
        name = db.get("name")
        size = db.get("pool_size")
        size = default_pool_size if size is None else _int(size, "pool_size of database %s" % name)
        reserve = db.get("reserve_pool")
        reserve = reserve_pool_size if reserve is None else _int(reserve, "reserve_pool of database %s" % name)
        cap = db.get("max_db_connections")
        cap = max_db_connections if cap is None else _int(cap, "max_db_connections of database %s" % name)
        per_pool = size + reserve
        if users is None:
            connections = cap if cap > 0 else None
        else:
            connections = per_pool * users
            if cap > 0:
                connections = min(connections, cap)
        plan.append(
            {
                "name": name,
                "dbname": db.get("dbname") or name,
                "pool_size": size,
                "reserve_pool": reserve,
                "max_db_connections": cap,
                "per_pool": per_pool,
                "pool_users": users,
                "server_connections": connections,
            }
        )
        if connections is None or total is None:
            total = None
        else:
            total += connections
    return {"databases": plan, "server_connections": total}


class FilterModule(object):
    def filters(self):
        return {
            "pgbouncer_userlist": pgbouncer_userlist,
            "pgbouncer_settings_diff": pgbouncer_settings_diff,
            "pgbouncer_pool_plan": pgbouncer_pool_plan,
        }
