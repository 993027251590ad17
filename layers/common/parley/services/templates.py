"""Message templates people keep: shared with the team, or personal to their owner.

A personal template is seen by its owner only (not even by an admin); a shared one by the members of
its team (of every team, for templates saved before templates had one) and by admins.

Changing or deleting one takes more than seeing it: a personal template is its owner's; a team's
shared template is its team members' (and admins'); an org-wide one (no team, seen by every team)
only an admin's, since it changes what every team sends. Only a template's owner can make it
personal, and only a person (a token with a user) can have one: else nobody would see it again.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from parley.access import Caller
from parley.domain.models import Template
from parley.domain.templates import malformed_placeholders
from parley.ports import TemplateRepository


class TemplateDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    body: str = Field(min_length=1, max_length=1600)
    shared: bool = Field(  # strict: 0 or "no" is a mistake, not false
        default=True,
        strict=True,
        description="True (the default): the team's template. False: personal, seen by its owner only; "
        "only its owner can make a template personal, and only a token that names a user can own one.",
    )


class TemplateNotFound(LookupError):
    """Absent, or personal to someone else: the API says the same in both cases."""


class TemplateForbidden(PermissionError):
    """The caller sees the template but may not change or delete it (403, with the reason)."""


class TemplateInvalid(ValueError):
    """The draft can't be kept: its body has something that looks like a merge field but can't be one,
    or it is personal with no user to own it."""


class TemplateService:
    def __init__(self, templates: TemplateRepository) -> None:
        self._templates = templates

    def visible(self, caller: Caller) -> list[Template]:
        return [t for t in self._templates.all() if _sees(caller, t)]

    def get(self, template_id: str, caller: Caller) -> Template:
        template = self._templates.get(template_id)
        if template is None or not _sees(caller, template):
            raise TemplateNotFound(f"no template with id {template_id}")
        return template

    def create(self, draft: TemplateDraft, caller: Caller) -> Template:
        _check(draft.body)
        if not draft.shared and not caller.user:
            raise TemplateInvalid(
                "a personal template needs a user to own it, and this token names none (no 'sub'): "
                "leave 'shared' true to make the team's template"
            )
        template = Template(
            template_id="tpl_" + uuid.uuid4().hex[:16],
            name=draft.name,
            body=draft.body,
            owner=caller.user,
            shared=draft.shared,
            team=caller.home_team,
        )
        self._templates.save(template)
        return template

    def update(self, template_id: str, draft: TemplateDraft, caller: Caller) -> Template:
        current = self.get(template_id, caller)
        _may_change(caller, current, "change")
        _check(draft.body)
        if current.shared and not draft.shared and not (caller.user and current.owner == caller.user):
            # Made personal, it would be seen by its owner alone (or, with none, by nobody).
            whose = f"its owner's ({current.owner})" if current.owner else "nobody's: it has no owner"
            raise TemplateForbidden(
                f"template {current.template_id} can be made personal only by its owner, and it is "
                f"{whose}; leave 'shared' true"
            )
        updated = current.model_copy(update={"name": draft.name, "body": draft.body, "shared": draft.shared})
        self._templates.save(updated)
        return updated

    def delete(self, template_id: str, caller: Caller) -> None:
        _may_change(caller, self.get(template_id, caller), "delete")
        self._templates.delete(template_id)


def _sees(caller: Caller, template: Template) -> bool:
    if template.owner == caller.user and caller.user:
        return True
    return template.shared and (template.team is None or caller.sees(template.team))


def _may_change(caller: Caller, template: Template, action: str) -> None:
    """TemplateForbidden unless the caller may change a template they see (the module's rules)."""
    if not template.shared:
        return  # personal: only its owner sees it, and so only its owner gets here
    if template.team is None:
        if not caller.admin:
            raise TemplateForbidden(
                f"template {template.template_id} is org-wide (every team uses it): "
                f"only an admin can {action} it"
            )
        return
    if not (caller.admin or template.team in caller.teams):
        raise TemplateForbidden(
            f"template {template.template_id} is team {template.team}'s: only its members can {action} it"
        )


def _check(body: str) -> None:
    bad = malformed_placeholders(body)
    if bad:
        raise TemplateInvalid(
            f"{bad[0]!r} isn't a merge field: use {{{{name}}}} or {{{{name|default}}}}, "
            "with letters, digits and underscores"
        )
