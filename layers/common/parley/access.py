"""Who is calling the API, and what they may see.

The JWT's claims (API Gateway's JWT authorizer; Cognito or any OIDC provider; `parley token`
locally) carry the user (`sub`), their teams (`teams`, or a single `team`) and, for an admin, the
role `admin` (in `roles`, or Cognito's `cognito:groups`). API Gateway's HTTP API hands list claims
over as text like "[sales support]", so every form is accepted.

A user sees a conversation (and its messages, records, conflicts) when it belongs to one of their
teams; an admin sees everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Caller:
    user: str
    teams: frozenset[str]
    admin: bool = False

    @property
    def home_team(self) -> str:
        """Where what the caller creates belongs (a record, a send): their first team."""
        return sorted(self.teams)[0] if self.teams else "default"

    def sees(self, team: str | None) -> bool:
        return self.admin or (team or "default") in self.teams

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Caller:
        teams = set(_values(claims.get("teams"))) | set(_values(claims.get("team")))
        roles = set(_values(claims.get("roles"))) | set(_values(claims.get("cognito:groups")))
        return cls(
            user=str(claims.get("sub") or ""),
            teams=frozenset(teams or {"default"}),
            admin=ADMIN_ROLE in roles,
        )


def _values(claim: Any) -> list[str]:
    """A claim as a list of names: a JSON list, "[a b]" (API Gateway's rendering), or "a,b"."""
    if claim is None:
        return []
    if isinstance(claim, list | tuple | set | frozenset):
        return [str(v).strip() for v in claim if str(v).strip()]
    text = str(claim).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [part for part in re.split(r"[\s,]+", text) if part]
