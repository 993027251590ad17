"""Make moto's DynamoDB answer one request at a time, as DynamoDB is atomic per item.

moto applies an UpdateItem by reading the stored item and writing it back in Python, with no lock;
two threads (the local stack's functions, a test's pool) updating one item can interleave and lose
an ADD or pass a condition the other write already broke. DynamoDB never does that, so code that is
right against AWS would look wrong here. One process-wide lock around each DynamoDB action restores
per-request atomicity; moto answers in well under a millisecond, so the lock costs nothing noticeable.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()


def make_dynamodb_requests_atomic() -> None:
    """Wrap moto's DynamoDB request handler in one lock; calling it again changes nothing."""
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    if getattr(call_action, "_parley_atomic", False):
        return

    @functools.wraps(call_action)
    def one_at_a_time(self: Any) -> Any:
        with _LOCK:
            return call_action(self)

    one_at_a_time._parley_atomic = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign]
