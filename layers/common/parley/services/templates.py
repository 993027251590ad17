"""Message templates people keep: shared with the team, or personal to their owner."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from parley.domain.models import Template
from parley.domain.templates import malformed_placeholders
from parley.ports import TemplateRepository


class TemplateDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=1600)
    shared: bool = True


class TemplateNotFound(LookupError):
    """Absent, or personal to someone else: the API says the same in both cases."""


class TemplateInvalid(ValueError):
    """The body has something that looks like a merge field but can't be one."""


class TemplateService:
    def __init__(self, templates: TemplateRepository) -> None:
        self._templates = templates

    def visible(self, user: str) -> list[Template]:
        return [t for t in self._templates.all() if t.shared or t.owner == user]

    def get(self, template_id: str, user: str) -> Template:
        template = self._templates.get(template_id)
        if template is None or not (template.shared or template.owner == user):
            raise TemplateNotFound(f"no template with id {template_id}")
        return template

    def create(self, draft: TemplateDraft, user: str) -> Template:
        _check(draft.body)
        template = Template(
            template_id="tpl_" + uuid.uuid4().hex[:16],
            name=draft.name,
            body=draft.body,
            owner=user,
            shared=draft.shared,
        )
        self._templates.save(template)
        return template

    def update(self, template_id: str, draft: TemplateDraft, user: str) -> Template:
        current = self.get(template_id, user)
        _check(draft.body)
        updated = current.model_copy(update={"name": draft.name, "body": draft.body, "shared": draft.shared})
        self._templates.save(updated)
        return updated

    def delete(self, template_id: str, user: str) -> None:
        self.get(template_id, user)
        self._templates.delete(template_id)


def _check(body: str) -> None:
    bad = malformed_placeholders(body)
    if bad:
        raise TemplateInvalid(
            f"{bad[0]!r} isn't a merge field: use {{{{name}}}} or {{{{name|default}}}}, "
            "with letters, digits and underscores"
        )
