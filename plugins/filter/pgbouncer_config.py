# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for PostgreSQL/PgBouncer secrets and PgBouncer configuration.

Documentation: one YAML file per filter next to this one (``scram_sha256_verifier.yml``, ...).
The secret logic lives in ``module_utils/pg_secrets.py``; errors never contain a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pg_secrets

AUTH_TYPES = ("scram-sha-256", "md5")


def _secret_error(exc, who=None):
    where = " (user %s)" % who if who is not None else ""
    return AnsibleFilterError("%s%s" % (exc, where))


def scram_sha256_verifier(password, user, salt_seed=None, salt=None, iterations=pg_secrets.DEFAULT_ITERATIONS):
    """SCRAM-SHA-256 verifier of ``password`` for ``user`` (see scram_sha256_verifier.yml)."""
    if password is None or password == "":
        raise AnsibleFilterError("scram_sha256_verifier: the password is empty (user %s)" % user)
    try:
        if salt:
            return pg_secrets.scram_verifier(password, salt, iterations)
        if not salt_seed:
            raise AnsibleFilterError(
                "scram_sha256_verifier: give salt_seed (a per-deployment secret that makes the salt repeatable) "
                "or salt (user %s)" % user
            )
        return pg_secrets.deterministic_scram_verifier(password, user, salt_seed, iterations)
    except pg_secrets.SecretError as exc:
        raise _secret_error(exc, user) from None


def postgresql_md5(password, user):
    """PostgreSQL's md5 password hash (see postgresql_md5.yml)."""
    if password is None or password == "":
        raise AnsibleFilterError("postgresql_md5: the password is empty (user %s)" % user)
    try:
        return pg_secrets.md5_secret(password, user)
    except pg_secrets.SecretError as exc:
        raise _secret_error(exc, user) from None


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
    if auth_type == "md5":
        return postgresql_md5(password, name)
    return scram_sha256_verifier(password, name, salt_seed=salt_seed, iterations=iterations)


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


SHOW_CONFIG_SEPARATOR = "\x1f"


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
    return text


def show_config(current):
    """{key: (value, default)} from SHOW CONFIG rows joined by SHOW_CONFIG_SEPARATOR (text or lines)."""
    lines = current.splitlines() if isinstance(current, str) else list(current or [])
    rows = {}
    for line in lines:
        fields = line.split(SHOW_CONFIG_SEPARATOR)
        if len(fields) < 3 or not fields[0]:
            continue
        rows[fields[0].strip().lower()] = (fields[1], fields[2])
    return rows


def pgbouncer_settings_diff(current, settings, keys=None):
    """Keys whose running value differs from ``settings`` (see pgbouncer_settings_diff.yml).

    ``current`` is PgBouncer's SHOW CONFIG output, one row per line with fields separated by
    ``\x1f`` (``psql -A -t -F $'\x1f' -c 'SHOW CONFIG'``). A key missing from ``settings`` is
    expected at its default; keys this PgBouncer does not know are ignored.
    """
    if not isinstance(settings, dict):
        raise AnsibleFilterError("pgbouncer_settings_diff: settings must be a dict")
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
            "scram_sha256_verifier": scram_sha256_verifier,
            "postgresql_md5": postgresql_md5,
            "pgbouncer_userlist": pgbouncer_userlist,
            "pgbouncer_settings_diff": pgbouncer_settings_diff,
            "pgbouncer_pool_plan": pgbouncer_pool_plan,
        }
