"""Read side of the inbox: conversations, their messages, one message, and the encoding preview."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from parley.access import Caller
from parley.domain.encoding import analyze
from parley.domain.models import Conversation, Message, OurNumber, smart_encoding_for
from parley.domain.phone import DEFAULT_REGION, InvalidPhoneNumber, normalize_e164
from parley.ports import ConversationRepository, MediaStore, MessageRepository, Page

# A Lambda response is at most 6 MB and base64 grows a body by a third: 4 MB raw is what fits.
MAX_MEDIA_BYTES = 4 * 1024 * 1024


class NotFound(LookupError):
    """Absent, or not visible to the caller: the API says the same in both cases."""


class MediaTooLarge(Exception):
    """Our copy exists but can't be returned in one Lambda response."""


@dataclass(frozen=True)
class StoredMedium:
    """One attachment's bytes as we keep them, and the type they were stored with."""

    content: bytes
    content_type: str


class InboxQueries:
    def __init__(
        self,
        messages: MessageRepository,
        conversations: ConversationRepository,
        media: MediaStore | None = None,
        *,
        region: str = DEFAULT_REGION,
    ) -> None:
        self._messages = messages
        self._conversations = conversations
        self._media = media
        self._region = region

    def conversations(self, team: str, *, limit: int, cursor: str | None) -> Page[Conversation]:
        return self._conversations.list_recent(team, limit=limit, cursor=cursor)

    def conversation(self, customer_number: str, caller: Caller) -> Conversation:
        """The conversation with a number written any way a person types it (as the other
        conversation routes take it); NotFound with the reason for one that is no number."""
        try:
            number = normalize_e164(customer_number, region=self._region, require_mobile=False)
        except InvalidPhoneNumber as exc:
            raise NotFound(f"no conversation with {customer_number}: {exc}") from exc
        conversation = self._conversations.get(number)
        if conversation is None or not caller.sees(conversation.team):
            raise NotFound(f"no conversation with {customer_number}")
        return conversation

    def messages(
        self, customer_number: str, caller: Caller, *, limit: int, cursor: str | None
    ) -> Page[Message]:
        conversation = self.conversation(customer_number, caller)
        number = conversation.customer_number
        return self._messages.list_for_conversation(number, limit=limit, cursor=cursor)

    def message(self, message_id: str, caller: Caller) -> Message:
        message = self._messages.get(message_id)
        if message is None or not caller.sees(message.team):
            raise NotFound(f"no message with id {message_id}")
        return message

    def medium(self, message_id: str, index: str, caller: Caller) -> StoredMedium:
        """Our copy of one attachment, for a caller who may see the message (else NotFound, as for
        the message itself): the web inbox can only show what it can load with its token."""
        message = self.message(message_id, caller)
        if not (index.isascii() and index.isdigit() and len(index) <= 4):
            raise NotFound(f"no media {index!r:.20}: an index is a whole number from 0")
        position = int(index)
        if position >= len(message.media):
            if message.expired_at is not None:
                raise NotFound(f"message {message_id}'s media expired on {message.expired_at.date()}")
            raise NotFound(f"message {message_id} has no media {position}")
        item = message.media[position]
        key = _media_key(item.stored_at)
        if key is None or self._media is None:
            why = item.error or "it was not copied from the carrier (yet)"
            raise NotFound(f"media {position} of message {message_id} is not stored: {why}")
        if item.size is not None and item.size > MAX_MEDIA_BYTES:
            raise MediaTooLarge(_too_large(item.size))
        found = self._media.read(key)
        if found is None:
            raise NotFound(f"media {position} of message {message_id} is no longer stored")
        content, content_type = found
        if len(content) > MAX_MEDIA_BYTES:
            raise MediaTooLarge(_too_large(len(content)))
        return StoredMedium(content, content_type)


def _media_key(stored_at: str | None) -> str | None:
    """The object key in an `s3://bucket/key` location; only keys the processor writes (media/...)."""
    if not stored_at or not stored_at.startswith("s3://"):
        return None
    _, _, key = stored_at.removeprefix("s3://").partition("/")
    return key if key.startswith("media/") else None


def _too_large(size: int) -> str:
    return (
        f"the media is {size} bytes, more than the {MAX_MEDIA_BYTES} bytes (4 MB) the API can return "
        "in one response"
    )


def preview(
    body: str, *, smart_encoding: bool | None = None, sender: OurNumber | None = None
) -> dict[str, Any]:
    """What a text will cost before it is sent, computed exactly as the send path computes it: smart
    encoding as asked, else as the sender number (the one the send would use) has it set. Also what
    it would cost with smart encoding on, so a writer sees when one curly quote triples the price."""
    info = analyze(body, smart_encoding=smart_encoding_for(smart_encoding, sender))
    smart = info if info.smart_encoding_applied else analyze(body, smart_encoding=True)
    result = asdict(info)
    result["segments_with_smart_encoding"] = smart.segments
    result["encoding"] = info.encoding.value
    result["parts"] = list(info.parts)
    result["non_gsm_characters"] = list(info.non_gsm_characters)
    return result
