"""Templates people keep: shared with the team or personal, and never half a merge field."""

from __future__ import annotations

import pytest

from parley.access import Caller
from parley.domain.models import Template
from parley.services.templates import (
    TemplateDraft,
    TemplateForbidden,
    TemplateInvalid,
    TemplateNotFound,
    TemplateService,
)
from tests.fakes import InMemoryTemplates

ANA = Caller("ana", frozenset({"sales"}))
BO = Caller("bo", frozenset({"sales"}))


def test_shared_templates_are_seen_by_the_team_and_personal_ones_only_by_their_owner() -> None:
    service = TemplateService(InMemoryTemplates())
    shared = service.create(TemplateDraft(name="Welcome", body="Hi {{first_name|there}}"), ANA)
    mine = service.create(TemplateDraft(name="Mine", body="Talk soon", shared=False), ANA)

    assert {t.template_id for t in service.visible(ANA)} == {shared.template_id, mine.template_id}
    assert [t.template_id for t in service.visible(BO)] == [shared.template_id]
    with pytest.raises(TemplateNotFound):
        service.get(mine.template_id, BO)
    with pytest.raises(TemplateNotFound):
        service.delete(mine.template_id, BO)


def test_update_and_delete() -> None:
    service = TemplateService(InMemoryTemplates())
    created = service.create(TemplateDraft(name="Reminder", body="See you {{when}}"), ANA)

    updated = service.update(
        created.template_id, TemplateDraft(name="Reminder", body="See you {{when|soon}}"), ANA
    )
    service.delete(created.template_id, ANA)

    assert updated.body == "See you {{when|soon}}" and (updated.owner, updated.team) == ("ana", "sales")
    assert service.visible(ANA) == []


@pytest.mark.parametrize("body", ["Hi {{first-name}}", "Hi {{first_name", "Hi {{ }}", "{{a}} and {{b c}}"])
def test_text_that_looks_like_a_merge_field_but_is_not_is_refused_with_the_reason(body: str) -> None:
    with pytest.raises(TemplateInvalid, match="isn't a merge field"):
        TemplateService(InMemoryTemplates()).create(TemplateDraft(name="Bad", body=body), ANA)


def test_another_teams_shared_template_is_absent_and_an_admin_sees_shared_ones_only() -> None:
    templates = InMemoryTemplates()
    service = TemplateService(templates)
    shared = service.create(TemplateDraft(name="Welcome", body="Hi"), ANA)
    personal = service.create(TemplateDraft(name="Mine", body="Bye", shared=False), ANA)
    templates.save(Template(template_id="old", name="Old", body="Hello"))  # saved before teams: everyone's
    outsider = Caller("cy", frozenset({"support"}))
    admin = Caller("root", frozenset({"ops"}), admin=True)

    assert [t.template_id for t in service.visible(outsider)] == ["old"]
    for template_id in (shared.template_id, personal.template_id):
        with pytest.raises(TemplateNotFound):
            service.update(template_id, TemplateDraft(name="X", body="X"), outsider)
    assert {t.template_id for t in service.visible(admin)} == {"old", shared.template_id}


def test_an_org_wide_template_is_changed_and_deleted_by_an_admin_only() -> None:
    templates = InMemoryTemplates()
    service = TemplateService(templates)
    templates.save(Template(template_id="welcome", name="Welcome", body="Hello"))  # team None: every team's
    admin = Caller("root", frozenset({"ops"}), admin=True)

    for caller in (ANA, Caller("cy", frozenset({"support"}))):
        with pytest.raises(TemplateForbidden, match="only an admin can change it"):
            service.update("welcome", TemplateDraft(name="Welcome", body="PWNED"), caller)
        with pytest.raises(TemplateForbidden, match="only an admin can delete it"):
            service.delete("welcome", caller)
    assert service.get("welcome", ANA).body == "Hello"

    assert service.update("welcome", TemplateDraft(name="Welcome", body="Hi all"), admin).body == "Hi all"
    service.delete("welcome", admin)
    assert templates.get("welcome") is None


def test_a_teams_template_is_changed_by_its_members_and_admins_only() -> None:
    templates = InMemoryTemplates()
    service = TemplateService(templates)
    shared = service.create(TemplateDraft(name="Welcome", body="Hi"), ANA)
    # a member of several teams, or a former member who still owns it, sees it but may not change it
    templates.save(shared.model_copy(update={"template_id": "t2", "team": "support"}))
    admin = Caller("root", frozenset({"ops"}), admin=True)

    assert service.update(shared.template_id, TemplateDraft(name="W", body="Hey"), BO).body == "Hey"
    with pytest.raises(TemplateForbidden, match="team support's"):
        service.update("t2", TemplateDraft(name="W", body="Hey"), ANA)  # ana owns it, but left support
    with pytest.raises(TemplateForbidden):
        service.delete("t2", ANA)
    assert service.update("t2", TemplateDraft(name="W", body="Hey"), admin).body == "Hey"
    service.delete(shared.template_id, BO)
    assert templates.get(shared.template_id) is None
