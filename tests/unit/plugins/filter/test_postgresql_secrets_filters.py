# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL secret filters: SCRAM-SHA-256 verifiers and md5 hashes, never showing the password."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ywmessaging.scaling.plugins.filter import postgresql_secrets as f
from ansible_collections.ywmessaging.scaling.plugins.module_utils import pg_secrets


def test_filters_are_registered():
    assert set(f.FilterModule().filters()) == {"scram_sha256_verifier", "postgresql_md5"}


def test_scram_filter_needs_a_seed_or_salt_and_never_shows_the_password():
    with pytest.raises(AnsibleFilterError) as err:
        f.scram_sha256_verifier("hunter2", "app")
    assert "salt_seed" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(AnsibleFilterError):
        f.scram_sha256_verifier("", "app", salt_seed="seed")
    verifier = f.scram_sha256_verifier("hunter2", "app", salt_seed="seed")
    assert verifier == pg_secrets.deterministic_scram_verifier("hunter2", "app", "seed")
    salt = verifier.split("$")[1].split(":")[1]
    assert f.scram_sha256_verifier("hunter2", "app", salt=salt) == verifier


def test_scram_filter_errors_name_the_filter_and_the_user():
    with pytest.raises(AnsibleFilterError) as err:
        f.scram_sha256_verifier("hunter2", "app", salt="not base64!")
    assert str(err.value).startswith("scram_sha256_verifier: ") and "(user app)" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_md5_filter():
    assert f.postgresql_md5("pw", "app") == pg_secrets.md5_secret("pw", "app")
    with pytest.raises(AnsibleFilterError) as err:
        f.postgresql_md5("", "app")
    assert str(err.value) == "postgresql_md5: the password is empty (user app)"
