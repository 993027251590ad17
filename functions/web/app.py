"""The web inbox's files and sign-in settings (`GET /`, `GET /ui/{file+}`), through the HTTP API without
its authorizer: the page holds nothing secret and signs in before it calls /v1. The serving rules are in
`parley.web_inbox`; this module only finds the files and the settings' store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from parley.web_inbox import LOCAL_STAGE, Site, load_files

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _ssm_read(name: str) -> str | None:
    from parley.crm.config import ssm_reader

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return ssm_reader(region)(name)


_site: Site | None = None


def site() -> Site:
    global _site
    if _site is None:
        stage = os.environ.get("PARLEY_STAGE", "")
        _site = Site(load_files(STATIC_DIR), stage=stage, read=_ssm_read, folder=STATIC_DIR)
        _site.reload = stage == LOCAL_STAGE
    return _site


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return site().respond(event)
