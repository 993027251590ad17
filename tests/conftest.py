"""Every test runs against moto or the local stack, never an AWS account: whatever AWS settings the
shell or the CI machine has (a profile that does not exist here, an endpoint) are set aside before
any test module imports boto3."""

from __future__ import annotations

import os

for _name in [
    n for n in os.environ if n in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE") or n.startswith("AWS_ENDPOINT_URL")
]:
    del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
