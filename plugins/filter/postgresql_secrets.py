# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters for PostgreSQL password secrets: what PostgreSQL stores for a password.

Documentation: one YAML file per filter next to this one (``scram_sha256_verifier.yml``,
``postgresql_md5.yml``). The secret logic lives in ``module_utils/pg_secrets.py``; errors never
contain a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pg_secrets


def scram_sha256_verifier(password, user, salt_seed=None, salt=None, iterations=pg_secrets.DEFAULT_ITERATIONS):
    """SCRAM-SHA-256 verifier of ``password`` for ``user`` (see scram_sha256_verifier.yml)."""
    try:
        return pg_secrets.stored_secret(password, user, "scram-sha-256", salt_seed, salt, iterations)
    except pg_secrets.SecretError as exc:
        raise AnsibleFilterError("scram_sha256_verifier: %s" % exc) from None


def postgresql_md5(password, user):
    """PostgreSQL's md5 password hash (see postgresql_md5.yml)."""
    try:
        return pg_secrets.stored_secret(password, user, "md5")
    except pg_secrets.SecretError as exc:
        raise AnsibleFilterError("postgresql_md5: %s" % exc) from None


class FilterModule(object):
    def filters(self):
        return {
            "scram_sha256_verifier": scram_sha256_verifier,
            "postgresql_md5": postgresql_md5,
        }
