"""Templates people keep: shared with the team or personal, and never half a merge field."""

from __future__ import annotations

import pytest

from parley.services.templates import TemplateDraft, TemplateInvalid, TemplateNotFound, TemplateService
from tests.fakes import InMemoryTemplates


def test_shared_templates_are_seen_by_everyone_and_personal_ones_only_by_their_owner() -> None:
    service = TemplateService(InMemoryTemplates())
    shared = service.create(TemplateDraft(name="Welcome", body="Hi {{first_name|there}}"), "ana")
    mine = service.create(TemplateDraft(name="Mine", body="Talk soon", shared=False), "ana")

    assert {t.template_id for t in service.visible("ana")} == {shared.template_id, mine.template_id}
    assert [t.template_id for t in service.visible("bo")] == [shared.template_id]
    with pytest.raises(TemplateNotFound):
        service.get(mine.template_id, "bo")
    with pytest.raises(TemplateNotFound):
        service.delete(mine.template_id, "bo")


def test_update_and_delete() -> None:
    service = TemplateService(InMemoryTemplates())
    created = service.create(TemplateDraft(name="Reminder", body="See you {{when}}"), "ana")

    updated = service.update(
        created.template_id, TemplateDraft(name="Reminder", body="See you {{when|soon}}"), "ana"
    )
    service.delete(created.template_id, "ana")

    assert updated.body == "See you {{when|soon}}" and updated.owner == "ana"
    assert service.visible("ana") == []


@pytest.mark.parametrize("body", ["Hi {{first-name}}", "Hi {{first_name", "Hi {{ }}", "{{a}} and {{b c}}"])
def test_text_that_looks_like_a_merge_field_but_is_not_is_refused_with_the_reason(body: str) -> None:
    with pytest.raises(TemplateInvalid, match="isn't a merge field"):
        TemplateService(InMemoryTemplates()).create(TemplateDraft(name="Bad", body=body), "ana")
