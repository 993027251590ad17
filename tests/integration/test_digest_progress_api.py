"""The digest's days and progress through the real handlers against moto: a day past retention is
refused, a day with no texts says so, and the digest function's shard jobs stop in time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from parley.adapters.dynamo import shard_of
from tests.integration.test_crm_api import FakeCrm, crm, digest_queue, texted, today
from tests.integration.test_crm_api import stack as stack  # noqa: F401 - the moto stack fixture
from tests.integration.test_handlers import CONTEXT, CUSTOMER, REGION, Stack, get, post_json

__all__ = ["crm", "digest_queue"]  # fixtures


def sweep(days: int) -> dict[str, object]:
    from functions.digest import app as digest_app

    answer: dict[str, object] = digest_app.handler({"retention": "sweep", "days": days}, CONTEXT)
    return answer


def test_a_day_past_the_retention_the_sweep_ran_with_is_400_naming_it(stack: Stack, crm: FakeCrm) -> None:
    old = (today() - timedelta(days=7)).isoformat()
    kept = (today() - timedelta(days=6)).isoformat()
    assert post_json("/v1/crm/digest", {"day": old})[0] == 202  # no sweep yet: nothing is blanked

    sweep(7)

    for path, body in (
        ("/v1/crm/digest", {"day": old}),
        ("/v1/crm/log", {"customer_number": CUSTOMER, "day": old}),
    ):
        status, answer = post_json(path, body)
        assert status == 400, (path, answer)
        assert "past retention" in answer["error"] and "RetentionDays" in answer["error"], answer
        assert f"the oldest day that can be logged is {kept}" in answer["error"]
    assert post_json("/v1/crm/digest", {"day": kept})[0] == 202
    status, answer = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": "0001-01-01"})
    assert status == 400 and "past retention" in answer["error"]
    sweep(0)  # kept forever again
    assert post_json("/v1/crm/digest", {"day": old})[0] == 202


def test_logging_a_day_without_texts_says_no_texts(stack: Stack, crm: FakeCrm) -> None:
    texted()
    yesterday = (today() - timedelta(days=1)).isoformat()

    status, report = post_json("/v1/crm/log", {"customer_number": CUSTOMER, "day": yesterday})

    assert status == 200
    assert (report["no_texts"], report["created"], report["unchanged"]) == (1, 0, 0)
    assert crm.posted == []


@dataclass
class ShortOfTime:
    """A Lambda context with a minute and a half left: a shard job starts no conversation."""

    function_name: str = "parley-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:parley-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return 1_000


def test_shard_jobs_with_no_time_left_hand_on_their_page_to_the_next_invocation(
    stack: Stack, crm: FakeCrm, digest_queue: str
) -> None:
    from functions.digest import app as digest_app
    from tests.integration.test_handlers import sqs_event

    day = texted()
    post_json("/v1/crm/digest", {"day": day})
    first = stack.queue_messages(digest_queue)

    assert digest_app.handler(sqs_event(first, "digest"), ShortOfTime()) == {"batchItemFailures": []}

    assert crm.posted == []
    handed_on = stack.queue_messages(digest_queue)  # the shards with no conversation are done
    (job,) = [json.loads(m["Body"]) for m in handed_on]
    assert (job["shard"], job["after"], job["seq"]) == (shard_of(CUSTOMER, 4), None, 1)
    assert digest_app.handler(sqs_event(first, "digest"), CONTEXT) == {"batchItemFailures": []}  # again
    assert crm.posted == [] and stack.queue_messages(digest_queue) == []
    assert digest_app.handler(sqs_event(handed_on, "digest"), CONTEXT) == {"batchItemFailures": []}
    status, run = get(f"/v1/crm/digest/{day}")
    assert status == 200 and run["finished"] and run["counts"]["created"] == 1
    assert len(crm.posted) == 1
