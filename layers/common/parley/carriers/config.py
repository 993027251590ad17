"""Carrier credentials and options, read from the environment (and SSM for secrets).

Kept free of pydantic-settings so the webhook's cold start stays small. A carrier reads
`PARLEY_<NAME>` for plain values; for a secret, `PARLEY_<NAME>` (local use, tests) wins, else the
SSM SecureString named by `PARLEY_<NAME>_PARAM` is read once per process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache


def _read_ssm(parameter_name: str, region: str) -> str:
    from parley.adapters.aws import read_secret

    return read_secret(parameter_name, region)


class CarrierConfig:
    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        ssm: Callable[[str, str], str] = _read_ssm,
    ) -> None:
        self._env = os.environ if environ is None else environ
        self._ssm = cache(ssm)

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
        """A secret plus, during a rotation, the previous values in `PARLEY_<NAME>_PREVIOUS` (comma list)."""
        current = self.secret(name)
        previous = [v.strip() for v in self.get(f"{name}_previous").split(",") if v.strip()]
        return tuple(v for v in (current, *previous) if v)

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
