"""The CRM's settings on a deployed stack: one SSM String parameter of JSON, secrets in SecureStrings.

Lambda caps a function's environment at 4 KB, and Salesforce, HubSpot and Dynamics 365 have some twenty
settings between them, so the environment carries only the parameter's name (PARLEY_CRM_CONFIG_PARAM).
The digest and API functions, which build the CRM, read it once per cold start; the webhook path never
imports this module.

The parameter holds one flat JSON object: "crm" names the CRM, and every other key is a `crm_*` setting
without its prefix, e.g. `{"crm": "hubspot", "hubspot_id_property": "parley_id"}`. A setting given a
non-empty value in the environment wins over the parameter (local use). Secrets never go in it: each is
the SecureString beside it, named after its setting less `crm_`, with `-` for `_`
(`/parley/prod/crm/hubspot-token` next to `/parley/prod/crm/config`), unless the secret's value or its
`_param` is set.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from parley.config import Settings
from parley.crm import registry

__all__ = [
    "SECRETS",
    "CrmConfigError",
    "ParameterReader",
    "config_keys",
    "load_crm_settings",
    "parse_crm_config",
    "secret_name",
    "ssm_reader",
]

ParameterReader = Callable[[str], "str | None"]
"""An SSM parameter's (decrypted) value, or None when there is no such parameter."""

# Each CRM's secrets; only the chosen CRM's are read. Either of two is enough where a CRM takes a token
# or client credentials, so a missing conventional parameter just leaves that secret empty.
SECRETS: dict[str, tuple[str, ...]] = {
    "webhook": ("crm_signing_secret",),
    "salesforce": ("crm_salesforce_access_token", "crm_salesforce_client_secret"),
    "hubspot": ("crm_hubspot_token",),
    "dynamics": ("crm_dynamics_access_token", "crm_dynamics_client_secret"),
}
# Any setting read from a `_param` is a secret, listed above or not: never accepted in the parameter.
_SECRET_FIELDS = frozenset(field for fields in SECRETS.values() for field in fields) | frozenset(
    field.removesuffix("_param")
    for field in Settings.model_fields
    if field.endswith("_param") and field != "crm_config_param"
)


class CrmConfigError(ValueError):
    """The CRM's configuration can't be used; the message names the parameter and the problem."""


def secret_name(field: str) -> str:
    """A secret's conventional parameter, beside the config: crm_hubspot_token -> hubspot-token."""
    return field.removeprefix("crm_").replace("_", "-")


def config_keys() -> dict[str, str]:
    """Key in the parameter's JSON -> Settings field: "crm", and each non-secret crm_* setting, unprefixed."""
    keys = {"crm": "crm"}
    for field in Settings.model_fields:
        if field.startswith("crm_") and field not in _SECRET_FIELDS and not field.endswith("_param"):
            keys[field.removeprefix("crm_")] = field
    return keys


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of two equal keys silently; a config that says two things is an error."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _unknown_key(key: str, keys: Mapping[str, str], folder: str) -> str:
    bare = key.removeprefix("crm_")
    if f"crm_{bare}" in _SECRET_FIELDS:
        return f"key {key!r} is a secret: store it as the SecureString {folder}/{secret_name(bare)}, not here"
    if key.startswith("crm_") and bare in keys:
        return f"key {key!r}: write the keys without the crm_ prefix, as {bare!r}"
    close = difflib.get_close_matches(key, list(keys), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(keys))}"
    return f"unknown key {key!r} ({hint})"


def parse_crm_config(parameter: str, text: str) -> dict[str, Any]:
    """The parameter's JSON as Settings values (field -> value); CrmConfigError says what is wrong."""

    def fail(problem: str) -> CrmConfigError:
        return CrmConfigError(f"CRM config parameter {parameter}: {problem}")

    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise fail(f"key {exc.key!r} appears twice") from None
    except json.JSONDecodeError as exc:
        raise fail(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise fail(f"must hold a JSON object, not {type(data).__name__}")

    keys = config_keys()
    folder = parameter.rsplit("/", 1)[0]
    values: dict[str, Any] = {}
    for key, value in data.items():
        field = keys.get(key)
        if field is None:
            raise fail(_unknown_key(key, keys, folder))
        try:
            values[field] = TypeAdapter(Settings.model_fields[field].annotation).validate_python(
                value, strict=True
            )
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].lower().removeprefix("input ")
            raise fail(f"key {key!r} {reason}, not {json.dumps(value)}") from None
    crm = values.get("crm")
    if crm is not None and crm.strip().lower() not in registry.names():
        raise fail(f"unknown CRM {crm!r} under 'crm' (one of: {', '.join(registry.names())})")
    return values


def _set_directly(settings: Settings, field: str) -> bool:
    """Given a value by the environment (or the caller); an empty variable counts as unset."""
    return field in settings.model_fields_set and getattr(settings, field) != ""


def ssm_reader(region: str) -> ParameterReader:
    """Reads parameters from SSM (SecureStrings decrypted), None for one that does not exist."""

    def read(name: str) -> str | None:
        from parley.adapters.aws import client

        ssm = client("ssm", region)
        try:
            result = ssm.get_parameter(Name=name, WithDecryption=True)
        except ssm.exceptions.ParameterNotFound:
            return None
        return str(result["Parameter"]["Value"])

    return read


def load_crm_settings(settings: Settings, read: ParameterReader | None = None) -> Settings:
    """Settings to build the CRM from: the config parameter's values merged in, then the CRM's secrets.

    Without a config parameter (local use, tests, a webhook-only stack) the settings are used as they
    are, and only secrets named by an explicit `_param` are read.
    """
    read = read or ssm_reader(settings.region)
    parameter = settings.crm_config_param
    folder = ""
    if parameter:
        text = read(parameter)
        if text is None:
            raise CrmConfigError(f"CRM config parameter {parameter}: not found in SSM")
        values = parse_crm_config(parameter, text)
        kept = {field: value for field, value in values.items() if not _set_directly(settings, field)}
        settings = settings.model_copy(update=kept)
        folder = parameter.rsplit("/", 1)[0]
    return _with_secrets(settings, folder, read)


def _with_secrets(settings: Settings, folder: str, read: ParameterReader) -> Settings:
    """The chosen CRM's secrets: a value set directly, else its `_param`, else the one beside the config."""
    updates: dict[str, str] = {}
    for field in SECRETS.get(settings.crm.strip().lower(), ()):
        if getattr(settings, field):
            continue
        explicit = getattr(settings, f"{field}_param")
        if explicit:
            value = read(explicit)
            if value is None:
                raise CrmConfigError(f"CRM secret parameter {explicit} ({field}_param): not found in SSM")
            updates[field] = value
        elif folder:
            value = read(f"{folder}/{secret_name(field)}")
            if value:
                updates[field] = value
    return settings.model_copy(update=updates) if updates else settings
