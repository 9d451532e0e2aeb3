"""User identity checks: passcodes against salted hashes, JWTs with a replay cache.

Passcodes are hashed with ``hashlib.scrypt`` (memory-hard, in the standard library) or PBKDF2,
so the config file never holds a passcode an attacker could reuse. JWTs are verified with PyJWT
(signature, ``exp``/``nbf``/``aud``/``iss``); PyJWT has no notion of replay, so a ``jti`` cache
is kept here: a token is good for one association, which stops a sniffed or leaked token from
being replayed while it is still valid.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from .config import JwtConfig, User

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 1 << 14, 8, 1


def hash_passcode(passcode: str, *, salt: bytes | None = None, method: str = "scrypt") -> str:
    """A self-describing salted hash for the config file: ``scrypt$N$r$p$salt$hash``."""
    salt = salt if salt is not None else os.urandom(16)
    if method == "scrypt":
        digest = hashlib.scrypt(passcode.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                                p=_SCRYPT_P, dklen=32)
        return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"
    if method == "pbkdf2_sha256":
        iterations = 600_000
        digest = hashlib.pbkdf2_hmac("sha256", passcode.encode(), salt, iterations)
        return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"
    raise ValueError(f"unknown method {method!r}")


def verify_passcode(passcode: bytes, stored: str) -> bool:
    """Constant-time check of ``passcode`` against a :func:`hash_passcode` string."""
    parts = stored.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
            digest = hashlib.scrypt(passcode, salt=salt, n=n, r=r, p=p, dklen=len(expected),
                                    maxmem=max(64 << 20, 256 * n * r))
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, expected = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
            digest = hashlib.pbkdf2_hmac("sha256", passcode, salt, int(parts[1]))
        else:
            return False
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


class AuthError(Exception):
    """A user identity was offered and is not good (the message says why, for the audit log)."""


@dataclass(frozen=True)
class Authenticated:
    """Who the association speaks for, and how that was established."""

    identity: str
    user: str
    method: str  # "passcode" | "jwt" | "certificate" | "calling-aet" | "default"


class PasscodeChecker:
    """Username + passcode against the ``[[user]]`` table."""

    def __init__(self, users: tuple[User, ...]) -> None:
        self._users = {u.name: u for u in users}
        self._dummy: str | None = None

    def check(self, username: str, passcode: bytes) -> Authenticated:
        user = self._users.get(username)
        if user is None and self._dummy is None:
            # Made on first use (not at every reload): an unknown user then costs as much
            # time as a known one, so timing does not tell which user names exist.
            self._dummy = hash_passcode("dicomguard-dummy", salt=b"\0" * 16)
        good = verify_passcode(passcode, user.passcode_hash if user else self._dummy or "")
        if user is None or not good:
            raise AuthError(f"bad username or passcode for {username!r}")
        return Authenticated(user.identity, username, "passcode")


class ReplayCache:
    """``jti`` values seen, each kept until its token expires (so the cache stays bounded by
    the number of tokens valid at once, not by the uptime)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self.max_entries = max_entries

    def check_and_add(self, jti: str, expires: float, now: float | None = None) -> bool:
        """True the first time a ``jti`` is seen, False for a replay."""
        now = time.time() if now is None else now
        if len(self._seen) >= self.max_entries:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            if len(self._seen) >= self.max_entries:
                return False  # full of live tokens: refuse rather than forget one
        if jti in self._seen and self._seen[jti] > now:
            return False
        self._seen[jti] = expires
        return True


class JwtVerifier:
    """Verify a JWT from a user identity sub-item (PS3.7 D.3.3.7, type 5)."""

    def __init__(self, config: JwtConfig, replay: ReplayCache | None = None) -> None:
        self.config = config
        self.replay = replay or ReplayCache()
        self._public_key = (
            Path(config.public_key_file).read_text() if config.public_key_file else None
        )

    def _key_for(self, token: str) -> str:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed JWT: {exc}") from None
        if alg not in self.config.algorithms:
            raise AuthError(f"JWT algorithm {alg!r} not allowed")
        key = self.config.secret if alg == "HS256" else self._public_key
        if key is None:
            raise AuthError(f"no key configured for {alg}")
        return key

    def check(self, token_bytes: bytes) -> Authenticated:
        try:
            token = token_bytes.decode("ascii").strip()
        except UnicodeDecodeError:
            raise AuthError("JWT is not ASCII") from None
        required = ["exp"]
        if self.config.require_jti:
            required.append("jti")
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": required, "verify_aud": self.config.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"JWT rejected: {type(exc).__name__}: {exc}") from None
        identity = claims.get(self.config.identity_claim)
        if not isinstance(identity, str) or not identity:
            raise AuthError(f"JWT lacks the {self.config.identity_claim!r} claim")
        jti = claims.get("jti")
        if jti is not None and not self.replay.check_and_add(str(jti), float(claims["exp"])):
            raise AuthError(f"JWT replayed (jti {jti!r} already used)")
        user = str(claims.get("sub", identity))
        return Authenticated(identity, user, "jwt")
