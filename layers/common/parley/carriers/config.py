"""Carrier credentials and options, read from the environment (and SSM for secrets).

Kept free of pydantic-settings so the webhook's cold start stays small. A carrier reads
`PARLEY_<NAME>` for plain values; for a secret, `PARLEY_<NAME>` (local use, tests) wins, else the
SSM SecureString named by `PARLEY_<NAME>_PARAM` is read once per process.

A secret that verifies webhooks may be rotated without downtime: while `<parameter>/previous` exists
beside the SSM parameter, its value is accepted too (read in the same call, so a cold start still costs
one SSM request). Locally the same comes from `PARLEY_<NAME>_PREVIOUS`. docs/deploy.md has the steps.
A list of keys that only some deployments have (`secret_list`) is an optional parameter: absent, none.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache

PREVIOUS_SUFFIX = "/previous"


def _read_ssm(parameter_name: str, region: str) -> str:
    from parley.adapters.aws import read_secret

    return read_secret(parameter_name, region)


def _read_ssm_parameters(names: tuple[str, ...], region: str) -> dict[str, str]:
    """The values of those of `names` that exist: one GetParameters call, which leaves a name that
    does not exist out of its answer instead of failing."""
    from parley.adapters.aws import client

    answer = client("ssm", region).get_parameters(Names=list(names), WithDecryption=True)
    return {str(p["Name"]): str(p["Value"]) for p in answer.get("Parameters", [])}


class CarrierConfig:
    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        ssm: Callable[[str, str], str] | None = None,
        ssm_parameters: Callable[[tuple[str, ...], str], Mapping[str, str]] | None = None,
    ) -> None:
        """`ssm` reads one secret; `ssm_parameters` several at once, leaving out those that do not
        exist. Given only `ssm` (tests), a call reads its first name alone: a secret has no previous
        value in SSM and nothing is read beside it."""
        self._env = os.environ if environ is None else environ
        self._ssm = cache(ssm or _read_ssm)
        if ssm_parameters is None:
            single = self._ssm
            ssm_parameters = _read_ssm_parameters if ssm is None else lambda n, r: {n[0]: single(n[0], r)}
        self._ssm_parameters = ssm_parameters
        self._stored: dict[str, str] = {}  # parameter name -> value ("" when absent), per process
        self._has_any: dict[tuple[str, ...], bool] = {}

    def _parameters(self, *names: str) -> dict[str, str]:
        """Each named parameter's value, "" when it does not exist; the unread ones in one call."""
        unread = tuple(dict.fromkeys(n for n in names if n not in self._stored))
        if unread:
            found = self._ssm_parameters(unread, self.region)
            self._stored.update({n: found.get(n, "") for n in unread})
        return {n: self._stored[n] for n in names}

    def get(self, name: str, default: str = "") -> str:
        """`PARLEY_<NAME>`, e.g. get("telnyx_public_key")."""
        return self._env.get(f"PARLEY_{name.upper()}", default)

    def get_list(self, name: str) -> tuple[str, ...]:
        """`PARLEY_<NAME>` as a comma list of non-empty, stripped items."""
        return tuple(item.strip() for item in self.get(name).split(",") if item.strip())

    def media_hosts(self, carrier_hosts: tuple[str, ...]) -> tuple[str, ...]:
        """The hosts a carrier fetches MMS media from: its own, or none when
        PARLEY_MEDIA_HOSTS_EXTRA_ONLY is true. That is for the local stack only, where media may come
        from the simulators alone (each carrier's PARLEY_<CARRIER>_MEDIA_HOSTS_EXTRA) and the real
        carriers' URLs in sample payloads are refused instead of being fetched with local credentials."""
        only_extra = self.get("media_hosts_extra_only").strip().lower() in ("1", "true", "yes", "on")
        return () if only_extra else carrier_hosts

    def secret(self, name: str) -> str:
        """A secret stripped of surrounding blanks; one of blanks only is unset (a key anyone could
        compute)."""
        value = self.get(name).strip()
        if value:
            return value
        parameter = self.get(f"{name}_param")
        return self._ssm(parameter, self.region).strip() if parameter else ""

    def secrets(self, name: str, *, read_with: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A secret, then during a rotation the previous values: `PARLEY_<NAME>_PREVIOUS` (a comma
        list) and, when the secret comes from SSM, the parameter `<name>/previous` if it exists.

        `read_with` names `secret_list`s whose parameters are read in the same SSM call, so a cold
        start still costs one request."""
        current, stored = self.get(name), ""
        parameter = self.get(f"{name}_param")
        if not current and parameter:
            beside = [self.get(f"{other}_param") for other in read_with if not self.get(other)]
            found = self._parameters(parameter, parameter + PREVIOUS_SUFFIX, *filter(None, beside))
            current, stored = found[parameter], found[parameter + PREVIOUS_SUFFIX]
        previous = [v.strip() for v in self.get(f"{name}_previous").split(",") if v.strip()]
        values: list[str] = []
        for value in (current.strip(), *previous, stored.strip()):
            if value and value not in values:  # a blank value is no key: anyone could sign with it
                values.append(value)
        return tuple(values)

    def secret_list(self, name: str) -> tuple[str, ...]:
        """A secret comma list: `PARLEY_<NAME>`, else the SSM parameter named by `PARLEY_<NAME>_PARAM`,
        which is optional: when it does not exist the list is empty."""
        value = self.get(name)
        parameter = self.get(f"{name}_param")
        if not value and parameter:
            value = self._parameters(parameter)[parameter]
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def has_any(self, *names: str) -> bool:
        """Whether any of these settings has a value: given directly, or stored in SSM under the
        parameter `PARLEY_<NAME>_PARAM` names (one that does not exist counts as unset). Read as
        `secrets` reads them (GetParameters with `/previous`), and answered once per process so a
        stranger's posts to an unused carrier cost no SSM call."""
        if names not in self._has_any:
            self._has_any[names] = any(self.secrets(name) for name in names)
        return self._has_any[names]

    @property
    def region(self) -> str:
        return self._env.get("AWS_REGION") or self._env.get("AWS_DEFAULT_REGION") or "us-east-1"

    @property
    def timeout(self) -> float:
        """Read timeout for carrier API calls, in seconds."""
        try:
            return float(self.get("carrier_timeout_seconds", "10"))
        except ValueError:
            return 10.0

    @property
    def verify_log_only(self) -> bool:
        return self.get("verify_mode", "enforce") == "log-only"

    def verify_log_only_for(self, carrier: str) -> bool:
        """Log-only for this carrier while its verification is rolled out, else the global mode.

        Set by listing it in `PARLEY_VERIFY_LOG_ONLY_CARRIERS` (the template's LogOnlyCarriers) or
        by `PARLEY_<CARRIER>_VERIFY_MODE`.
        """
        listed = {c.strip().lower() for c in self.get("verify_log_only_carriers").split(",") if c.strip()}
        if carrier.lower() in listed:
            return True
        own = self.get(f"{carrier.replace('-', '_')}_verify_mode")
        return own == "log-only" if own else self.verify_log_only
