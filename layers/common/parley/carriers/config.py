"""Carrier credentials and options, read from the environment (and SSM for secrets).

Kept free of pydantic-settings so the webhook's cold start stays small. A carrier reads
`PARLEY_<NAME>` for plain values; for a secret, `PARLEY_<NAME>` (local use, tests) wins, else the
SSM SecureString named by `PARLEY_<NAME>_PARAM` is read once per process.

A secret that verifies webhooks may be rotated without downtime: while `<parameter>/previous` exists
beside the SSM parameter, its value is accepted too (read in the same call, so a cold start still costs
one SSM request). Locally the same comes from `PARLEY_<NAME>_PREVIOUS`. docs/deploy.md has the steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache

PREVIOUS_SUFFIX = "/previous"


def _read_ssm(parameter_name: str, region: str) -> str:
    from parley.adapters.aws import read_secret

    return read_secret(parameter_name, region)


def _read_ssm_with_previous(parameter_name: str, region: str) -> tuple[str, str]:
    """The secret and the value at `<name>/previous` ("" when absent): one GetParameters call, which
    leaves a name that does not exist out of its answer instead of failing."""
    from parley.adapters.aws import client

    names = [parameter_name, parameter_name + PREVIOUS_SUFFIX]
    answer = client("ssm", region).get_parameters(Names=names, WithDecryption=True)
    values = {str(p["Name"]): str(p["Value"]) for p in answer.get("Parameters", [])}
    return values.get(names[0], ""), values.get(names[1], "")


class CarrierConfig:
    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        ssm: Callable[[str, str], str] | None = None,
        ssm_with_previous: Callable[[str, str], tuple[str, str]] | None = None,
    ) -> None:
        """`ssm` reads one secret; `ssm_with_previous` a secret and its rotation value. Given only
        `ssm` (tests), a secret has no previous value in SSM."""
        self._env = os.environ if environ is None else environ
        self._ssm = cache(ssm or _read_ssm)
        if ssm_with_previous is None:
            single = self._ssm
            ssm_with_previous = _read_ssm_with_previous if ssm is None else lambda n, r: (single(n, r), "")
        self._ssm_with_previous = cache(ssm_with_previous)

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
        value = self.get(name)
        if value:
            return value
        parameter = self.get(f"{name}_param")
        return self._ssm(parameter, self.region) if parameter else ""

    def secrets(self, name: str) -> tuple[str, ...]:
        """A secret, then during a rotation the previous values: `PARLEY_<NAME>_PREVIOUS` (a comma
        list) and, when the secret comes from SSM, the parameter `<name>/previous` if it exists."""
        current, stored = self.get(name), ""
        parameter = self.get(f"{name}_param")
        if not current and parameter:
            current, stored = self._ssm_with_previous(parameter, self.region)
        previous = [v.strip() for v in self.get(f"{name}_previous").split(",") if v.strip()]
        if stored.strip():
            previous.append(stored)
        values: list[str] = []
        for value in (current, *previous):
            if value and value not in values:
                values.append(value)
        return tuple(values)

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
