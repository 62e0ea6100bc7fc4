# -*- coding: utf-8 -*-
# Copyright: (c) 2026, ywmessaging.scaling contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""PostgreSQL password secrets as PostgreSQL and PgBouncer store them.

* SCRAM-SHA-256 verifiers (RFC 5802 / RFC 7677), in PostgreSQL's text form
  ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`` (base64 fields), with the
  password prepared by SASLprep (RFC 4013) the way PostgreSQL does it: pure ASCII is used as
  is, and a password SASLprep rejects (prohibited characters, bidi rules, invalid UTF-8) is
  used as its raw bytes.
* md5 hashes, ``"md5" + md5(password + user)``.

A verifier computed here for the same password, salt and iteration count is byte-for-byte the
one PostgreSQL stores (the unit tests compare against verifiers produced by a real server).

Deterministic salts: PgBouncer can only log in to PostgreSQL with a SCRAM verifier (rather than
the plaintext) when the verifier in its auth file is the one PostgreSQL has, so a verifier must
be computed the same way on every run. ``derive_salt`` makes the salt an HMAC of the user and
the prepared password keyed with a per-deployment secret seed. Without the seed, a salt that
depends only on user and password would let anyone precompute verifiers for common passwords
of common user names once for every site, which is what salts exist to prevent.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import hashlib
import hmac
import re
import stringprep
import unicodedata

SCRAM_PREFIX = "SCRAM-SHA-256"
DEFAULT_ITERATIONS = 4096
SALT_BYTES = 16
_SALT_CONTEXT = b"ywmessaging.scaling scram-sha-256 salt\x00"

SCRAM_RE = re.compile(
    r"^SCRAM-SHA-256\$(?P<iterations>[1-9][0-9]*):(?P<salt>[A-Za-z0-9+/]+={0,2})"
    r"\$(?P<stored_key>[A-Za-z0-9+/]{43}=):(?P<server_key>[A-Za-z0-9+/]{43}=)$"
)
MD5_RE = re.compile(r"^md5[0-9a-f]{32}$")


class SecretError(ValueError):
    """Bad input: the message says what is wrong, never what the secret is."""


def _text(value, what):
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError("%s is not valid UTF-8" % what) from None
    if not isinstance(value, str):
        raise SecretError("%s must be a string, not %s" % (what, type(value).__name__))
    return value


# ---------------------------------------------------------------------------------------------
# SASLprep, as PostgreSQL's src/common/saslprep.c applies it


def _prohibited(char):
    return (
        stringprep.in_table_c12(char)
        or stringprep.in_table_c21_c22(char)
        or stringprep.in_table_c3(char)
        or stringprep.in_table_c4(char)
        or stringprep.in_table_c5(char)
        or stringprep.in_table_c6(char)
        or stringprep.in_table_c7(char)
        or stringprep.in_table_c8(char)
        or stringprep.in_table_c9(char)
        or stringprep.in_table_a1(char)  # unassigned code points are prohibited in stored strings
    )


def saslprep(password):
    """The string SASLprep makes of ``password``, or None when SASLprep rejects it.

    PostgreSQL then uses the password unchanged; ``prepare_password`` does that.
    """
    if all(ord(c) < 0x80 for c in password):
        return password  # PostgreSQL skips SASLprep for pure ASCII
    mapped = []
    for char in password:
        if stringprep.in_table_b1(char):
            continue  # commonly mapped to nothing
        mapped.append(" " if stringprep.in_table_c12(char) else char)
    prepared = unicodedata.normalize("NFKC", "".join(mapped))
    if not prepared:
        return None
    if any(_prohibited(c) for c in prepared):
        return None
    has_randal = any(stringprep.in_table_d1(c) for c in prepared)
    if has_randal:
        if any(stringprep.in_table_d2(c) for c in prepared):
            return None
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            return None
    return prepared


def prepare_password(password):
    """Password bytes as PostgreSQL hashes them for SCRAM (SASLprep when it applies, else raw)."""
    if isinstance(password, bytes):
        try:
            text = password.decode("utf-8")
        except UnicodeDecodeError:
            return password  # not UTF-8: PostgreSQL uses the bytes as they are
    else:
        text = _text(password, "the password")
    prepared = saslprep(text)
    return (prepared if prepared is not None else text).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# SCRAM-SHA-256


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def derive_salt(password, user, seed, length=SALT_BYTES):
    """A salt that is the same on every run for (seed, user, password) and unpredictable without the seed."""
    seed_bytes = _text(seed, "the salt seed").encode("utf-8")
    if not seed_bytes:
        raise SecretError("the salt seed must not be empty")
    message = _SALT_CONTEXT + _text(user, "the user name").encode("utf-8") + b"\x00" + prepare_password(password)
    return hmac.new(seed_bytes, message, hashlib.sha256).digest()[:length]


def scram_keys(password, salt, iterations):
    """(StoredKey, ServerKey) for ``password`` (RFC 5802 section 3)."""
    salted = hashlib.pbkdf2_hmac("sha256", prepare_password(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(password, salt, iterations=DEFAULT_ITERATIONS):
    """PostgreSQL's text form of the SCRAM-SHA-256 verifier of ``password``.

    ``salt`` is raw bytes or its base64 text (as found in an existing verifier).
    """
    if isinstance(salt, str):
        try:
            salt = base64.b64decode(salt.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise SecretError("the salt must be base64 text or bytes") from None
    if not isinstance(salt, bytes) or not salt:
        raise SecretError("the salt must not be empty")
    try:
        iterations = int(iterations)
    except (TypeError, ValueError):
        raise SecretError("iterations must be a positive integer") from None
    if iterations < 1:
        raise SecretError("iterations must be a positive integer")
    stored_key, server_key = scram_keys(password, salt, iterations)
    return "%s$%d:%s$%s:%s" % (SCRAM_PREFIX, iterations, _b64(salt), _b64(stored_key), _b64(server_key))


def parse_scram_verifier(verifier):
    """``{'iterations', 'salt', 'stored_key', 'server_key'}`` (bytes fields), or None when malformed."""
    match = SCRAM_RE.match(verifier or "")
    if not match:
        return None
    try:
        return {
            "iterations": int(match.group("iterations")),
            "salt": base64.b64decode(match.group("salt"), validate=True),
            "stored_key": base64.b64decode(match.group("stored_key"), validate=True),
            "server_key": base64.b64decode(match.group("server_key"), validate=True),
        }
    except (binascii.Error, ValueError):
        return None


def scram_matches(verifier, password):
    """Whether ``password`` is the password behind the SCRAM ``verifier`` (constant-time compare)."""
    parsed = parse_scram_verifier(verifier)
    if parsed is None:
        return False
    expected = scram_verifier(password, parsed["salt"], parsed["iterations"])
    return hmac.compare_digest(expected.encode("ascii"), verifier.encode("ascii"))


def deterministic_scram_verifier(password, user, seed, iterations=DEFAULT_ITERATIONS):
    """The verifier with a salt from ``derive_salt``: the same text on every run."""
    return scram_verifier(password, derive_salt(password, user, seed), iterations)


# ---------------------------------------------------------------------------------------------
# md5


def md5_secret(password, user):
    """PostgreSQL's md5 password hash: ``"md5" + md5(password + user)``."""
    data = _text(password, "the password").encode("utf-8") + _text(user, "the user name").encode("utf-8")
    return "md5" + hashlib.md5(data).hexdigest()  # noqa: S324 - PostgreSQL's md5 format, not our choice


def secret_kind(secret):
    """``scram-sha-256``, ``md5`` or ``plain`` for a stored secret."""
    if parse_scram_verifier(secret) is not None:
        return "scram-sha-256"
    if MD5_RE.match(secret or ""):
        return "md5"
    return "plain"


# ---------------------------------------------------------------------------------------------
# What to store for a password


def stored_secret(password, user, auth_type="scram-sha-256", salt_seed=None, salt=None, iterations=DEFAULT_ITERATIONS):
    """What PostgreSQL stores for ``password`` of ``user``: an md5 hash (``auth_type`` md5) or a
    SCRAM-SHA-256 verifier, salted with ``salt`` as given or else with a repeatable salt derived
    from ``salt_seed``. SecretError names the user and what is missing, never the password."""
    if password is None or password == "":
        raise SecretError("the password is empty (user %s)" % user)
    if auth_type != "md5" and not salt and not salt_seed:
        raise SecretError(
            "give salt_seed (a per-deployment secret that makes the salt repeatable) or salt (user %s)" % user
        )
    try:
        if auth_type == "md5":
            return md5_secret(password, user)
        if salt:
            return scram_verifier(password, salt, iterations)
        return deterministic_scram_verifier(password, user, salt_seed, iterations)
    except SecretError as exc:
        raise SecretError("%s (user %s)" % (exc, user)) from None
