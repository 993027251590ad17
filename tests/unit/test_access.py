"""The caller's teams and role, from every form the JWT claims arrive in."""

from __future__ import annotations

import pytest

from parley.access import Caller


@pytest.mark.parametrize(
    ("claims", "teams", "admin"),
    [
        ({"sub": "u1", "team": "sales"}, {"sales"}, False),
        ({"sub": "u1", "teams": ["sales", "support"]}, {"sales", "support"}, False),
        ({"sub": "u1", "teams": "[sales support]"}, {"sales", "support"}, False),  # API Gateway's rendering
        ({"sub": "u1", "teams": "sales,support", "team": "ops"}, {"sales", "support", "ops"}, False),
        ({"sub": "u1", "roles": ["admin"]}, set(), True),
        ({"sub": "u1", "team": "sales", "cognito:groups": "[admin]"}, {"sales"}, True),
        ({"sub": "u1"}, set(), False),  # no team claim: no team, not the pool's
    ],
)
def test_claims_become_a_caller(claims: dict[str, object], teams: set[str], admin: bool) -> None:
    caller = Caller.from_claims(claims)
    assert (caller.user, set(caller.teams), caller.admin) == ("u1", teams, admin)


def test_a_caller_sees_their_teams_and_an_admin_sees_all() -> None:
    sales = Caller.from_claims({"sub": "u1", "teams": ["sales", "support"]})
    assert sales.sees("sales") and sales.sees("support") and not sales.sees("ops")
    assert sales.home_team == "sales"
    assert Caller.from_claims({"sub": "root", "roles": "[admin]"}).sees("ops")


def test_the_home_team_is_the_tokens_first_not_the_alphabetically_first() -> None:
    assert Caller.from_claims({"sub": "u1", "teams": ["support", "sales"]}).home_team == "support"
    assert Caller.from_claims({"sub": "u1", "teams": "[support sales]"}).home_team == "support"
    assert Caller.from_claims({"sub": "u1", "teams": "support,sales", "team": "ops"}).home_team == "support"
    assert Caller.from_claims({"sub": "u1", "team": "support", "teams": []}).home_team == "support"


def test_a_token_without_a_team_has_no_access_unless_it_is_an_admins() -> None:
    nobody = Caller.from_claims({"sub": "u1"})
    assert not nobody.has_access and not nobody.sees("default") and not nobody.sees(None)
    admin = Caller.from_claims({"sub": "root", "roles": "[admin]"})
    assert admin.has_access and admin.home_team == "default"
    assert Caller.from_claims({"sub": "u1", "team": "sales"}).has_access
