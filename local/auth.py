"""Dev JWTs for the local HTTP API: the local front verifies these instead of the template's real issuer.

API Gateway validates the token before the function runs; locally we sign HS256 tokens with a shared dev
secret so `curl` and tests can call /v1/* routes without an identity provider. Never use these secrets or
tokens outside a laptop: the default secret is public (it is in this file).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jwt

ISSUER = "parley-local"
AUDIENCE = "parley"
ALGORITHM = "HS256"
SECRET_ENV = "PARLEY_DEV_JWT_SECRET"
# Dev-only and public on purpose: 32+ bytes so PyJWT does not warn about a short HMAC key.
DEFAULT_DEV_SECRET = "parley-local-dev-only-secret-never-use-in-aws"
DEFAULT_TTL_SECONDS = 12 * 3600


class DevTokenError(Exception):
    """A dev token is missing, malformed, expired or signed with another secret (the message says which)."""


def dev_jwt_secret() -> str:
    """The secret the local stack verifies with: $PARLEY_DEV_JWT_SECRET, else the documented dev default."""
    return os.environ.get(SECRET_ENV) or DEFAULT_DEV_SECRET


def issue_dev_token(
    user: str,
    team: str | None = None,
    *,
    secret: str,
    teams: list[str] | None = None,
    roles: list[str] | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    scopes: list[str] | None = None,
    now: int | None = None,
) -> str:
    """Sign a token carrying what the API reads from API Gateway's JWT claims: `sub` (the user),
    `teams` (a list, as an OIDC provider's groups claim; `team`, the first, for older readers) and
    `roles` (`admin` sees every team)."""
    all_teams = list(dict.fromkeys(([team] if team else []) + [t.strip() for t in teams or [] if t.strip()]))
    if not user or not all_teams:
        raise DevTokenError("a dev token needs a non-empty user and at least one team")
    if ttl_seconds <= 0:
        raise DevTokenError(f"ttl_seconds must be positive (got {ttl_seconds})")
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "team": all_teams[0],
        "teams": all_teams,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    if roles:
        claims["roles"] = list(roles)
    if scopes:
        claims["scope"] = " ".join(scopes)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_dev_token(token: str, *, secret: str) -> dict[str, Any]:
    """Claims of a valid dev token; else DevTokenError with the reason (for logs, never for clients)."""
    if not token:
        raise DevTokenError("no token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["iss", "aud", "sub", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise DevTokenError("dev token expired (issue a new one with `parley token`)") from exc
    except jwt.InvalidSignatureError as exc:
        raise DevTokenError(f"dev token signature does not match ${SECRET_ENV} (or the default)") from exc
    except jwt.InvalidTokenError as exc:
        raise DevTokenError(f"invalid dev token: {exc}") from exc
    if not claims.get("team"):
        raise DevTokenError("dev token has no team claim")
    return claims
