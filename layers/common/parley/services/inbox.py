"""Read side of the inbox: conversations, their messages, one message, and the encoding preview."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from parley.access import Caller
from parley.domain.encoding import analyze
from parley.domain.models import Conversation, Message, OurNumber, smart_encoding_for
from parley.ports import ConversationRepository, MessageRepository, Page


class NotFound(LookupError):
    """Absent, or not visible to the caller: the API says the same in both cases."""


class InboxQueries:
    def __init__(self, messages: MessageRepository, conversations: ConversationRepository) -> None:
        self._messages = messages
        self._conversations = conversations

    def conversations(self, team: str, *, limit: int, cursor: str | None) -> Page[Conversation]:
        return self._conversations.list_recent(team, limit=limit, cursor=cursor)

    def conversation(self, customer_number: str, caller: Caller) -> Conversation:
        conversation = self._conversations.get(customer_number)
        if conversation is None or not caller.sees(conversation.team):
            raise NotFound(f"no conversation with {customer_number}")
        return conversation

    def messages(
        self, customer_number: str, caller: Caller, *, limit: int, cursor: str | None
    ) -> Page[Message]:
        self.conversation(customer_number, caller)
        return self._messages.list_for_conversation(customer_number, limit=limit, cursor=cursor)

    def message(self, message_id: str, caller: Caller) -> Message:
        message = self._messages.get(message_id)
        if message is None or not caller.sees(message.team):
            raise NotFound(f"no message with id {message_id}")
        return message


def preview(
    body: str, *, smart_encoding: bool | None = None, sender: OurNumber | None = None
) -> dict[str, Any]:
    """What a text will cost before it is sent, computed exactly as the send path computes it: smart
    encoding as asked, else as the sender number (the one the send would use) has it set."""
    info = analyze(body, smart_encoding=smart_encoding_for(smart_encoding, sender))
    result = asdict(info)
    result["encoding"] = info.encoding.value
    result["parts"] = list(info.parts)
    result["non_gsm_characters"] = list(info.non_gsm_characters)
    return result
