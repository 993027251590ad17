"""Who is calling the API, and what they may see.

The JWT's claims (API Gateway's JWT authorizer; Cognito or any OIDC provider; `parley token`
locally) carry the user (`sub`), their teams (`teams`, or a single `team`) and, for an admin, the
role `admin` (in `roles`, or Cognito's `cognito:groups`). API Gateway's HTTP API hands list claims
over as text like "[sales support]", so every form is accepted.

A user sees a conversation (and its messages, records, conflicts) when it belongs to one of their
teams; an admin sees everything.

A token that names no team gives no access (the API answers 403): a user the identity provider
knows but no group mapping placed is nobody's member, not the pool's. An admin is defined by the
role alone, so an admin's token without a team still works; what an admin creates without naming a
team belongs to `default`, the pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Caller:
    user: str
    teams: frozenset[str]
    admin: bool = False
    # The teams in the token's order: the first is the home team (a set keeps no order).
    order: tuple[str, ...] = field(default=(), compare=False)

    @property
    def home_team(self) -> str:
        """Where what the caller creates belongs (a record, a send): their first team, as the token
        lists them; `default` for an admin whose token names none."""
        for team in self.order:
            if team in self.teams:
                return team
        return sorted(self.teams)[0] if self.teams else "default"

    @property
    def has_access(self) -> bool:
        """A member of at least one team, or an admin (who needs none)."""
        return self.admin or bool(self.teams)

    def sees(self, team: str | None) -> bool:
        return self.admin or (team or "default") in self.teams

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Caller:
        teams = tuple(dict.fromkeys(_values(claims.get("teams")) + _values(claims.get("team"))))
        roles = set(_values(claims.get("roles"))) | set(_values(claims.get("cognito:groups")))
        return cls(
            user=str(claims.get("sub") or ""),
            teams=frozenset(teams),
            admin=ADMIN_ROLE in roles,
            order=teams,
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
