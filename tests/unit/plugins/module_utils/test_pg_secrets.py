# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 verifiers and md5 hashes, checked against what a real PostgreSQL 15 stored."""

import base64
import hashlib
import hmac
import json
import os

import pytest

from ansible_collections.ywmessaging.scaling.plugins.module_utils import pg_secrets

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "pg_secrets", "postgresql-15-verifiers.json")
with open(FIXTURE, encoding="utf-8") as _fh:
    POSTGRESQL = json.load(_fh)


@pytest.mark.parametrize("case", POSTGRESQL["scram"], ids=[c["user"] for c in POSTGRESQL["scram"]])
def test_verifier_is_byte_for_byte_what_postgresql_stores(case):
    parsed = pg_secrets.parse_scram_verifier(case["verifier"])
    assert parsed is not None
    assert pg_secrets.scram_verifier(case["password"], parsed["salt"], parsed["iterations"]) == case["verifier"]
    # The salt may also be given as the base64 text found in the verifier.
    salt_text = case["verifier"].split("$")[1].split(":")[1]
    assert pg_secrets.scram_verifier(case["password"], salt_text, 4096) == case["verifier"]


@pytest.mark.parametrize(
    "user, prepared",
    [
        ("fx_soft_hyphen", "IX"),  # U+00AD is mapped to nothing
        ("fx_roman_nine", "IX"),  # NFKC
        ("fx_nbsp", "a b"),  # non-ASCII space becomes U+0020
        ("fx_decomposed", "p\u00e4ss"),  # NFKC composes
    ],
)
def test_saslprep_changes_what_postgresql_hashes(user, prepared):
    case = next(c for c in POSTGRESQL["scram"] if c["user"] == user)
    assert pg_secrets.saslprep(case["password"]) == prepared
    parsed = pg_secrets.parse_scram_verifier(case["verifier"])
    # Hashing the unprepared password would give a different verifier than PostgreSQL's.
    salted = hashlib.pbkdf2_hmac("sha256", case["password"].encode("utf-8"), parsed["salt"], 4096)
    raw_server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert raw_server_key != parsed["server_key"]


@pytest.mark.parametrize("user", ["fx_empty_after_map", "fx_bidi_mixed"])
def test_a_password_saslprep_rejects_is_hashed_as_its_raw_bytes(user):
    case = next(c for c in POSTGRESQL["scram"] if c["user"] == user)
    assert pg_secrets.saslprep(case["password"]) is None
    assert pg_secrets.prepare_password(case["password"]) == case["password"].encode("utf-8")
    assert pg_secrets.scram_matches(case["verifier"], case["password"])


def test_md5_is_what_postgresql_stores():
    for case in POSTGRESQL["md5"]:
        assert pg_secrets.md5_secret(case["password"], case["user"]) == case["verifier"]


def test_scram_matches_tells_right_from_wrong_passwords():
    case = POSTGRESQL["scram"][0]
    assert pg_secrets.scram_matches(case["verifier"], case["password"])
    assert not pg_secrets.scram_matches(case["verifier"], case["password"] + "x")
    assert not pg_secrets.scram_matches("md5" + "0" * 32, case["password"])


def test_deterministic_verifier_is_stable_and_depends_on_seed_user_and_password():
    first = pg_secrets.deterministic_scram_verifier("s3cret", "app", "seed-a")
    assert first == pg_secrets.deterministic_scram_verifier("s3cret", "app", "seed-a")
    assert pg_secrets.scram_matches(first, "s3cret")
    others = {
        pg_secrets.deterministic_scram_verifier("s3cret", "app", "seed-b"),
        pg_secrets.deterministic_scram_verifier("s3cret", "app2", "seed-a"),
        pg_secrets.deterministic_scram_verifier("s3cret!", "app", "seed-a"),
    }
    salts = {v.split("$")[1] for v in others | {first}}
    assert len(salts) == 4
    assert len(base64.b64decode(first.split("$")[1].split(":")[1])) == pg_secrets.SALT_BYTES


def test_iterations_are_part_of_the_verifier():
    verifier = pg_secrets.deterministic_scram_verifier("s3cret", "app", "seed", iterations=8192)
    assert verifier.startswith("SCRAM-SHA-256$8192:")
    assert pg_secrets.scram_matches(verifier, "s3cret")


@pytest.mark.parametrize(
    "secret, kind",
    [
        (POSTGRESQL["scram"][0]["verifier"], "scram-sha-256"),
        (POSTGRESQL["md5"][0]["verifier"], "md5"),
        ("md5" + "x" * 32, "plain"),
        ("SCRAM-SHA-256$4096:abc$def:ghi", "plain"),
        ("hunter2", "plain"),
    ],
)
def test_secret_kind(secret, kind):
    assert pg_secrets.secret_kind(secret) == kind


@pytest.mark.parametrize(
    "call",
    [
        lambda: pg_secrets.derive_salt("pw", "app", ""),
        lambda: pg_secrets.scram_verifier("pw", "not base64!", 4096),
        lambda: pg_secrets.scram_verifier("pw", b"salt", 0),
        lambda: pg_secrets.md5_secret(None, "app"),
    ],
)
def test_bad_input_raises_without_echoing_secrets(call):
    with pytest.raises(pg_secrets.SecretError) as err:
        call()
    assert "pw" not in str(err.value)
