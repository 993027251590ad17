"""Conversations in the inbox: filtered lists and search across the caller's teams, read state,
close and reopen, and adding a contact from a conversation.

Every read is bounded whatever the table size: a page reads at most `limit` index items per team
the caller sees (one Query each, with the filter applied to what was read). So a page may hold
fewer than `limit` conversations, even none, and still have a cursor: the rest of the index was not
read yet. Several teams are merged newest first (search: by matching term) under one cursor that
holds each team's position.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from parley.access import Caller
from parley.domain.models import ContactRecord, Conversation, ConversationView, Message, OptOut
from parley.domain.phone import InvalidPhoneNumber, normalize_e164
from parley.domain.routing import made_by_parley
from parley.domain.search import SearchQuery, parse_query
from parley.ports import (
    ContactRepository,
    ConversationBrowser,
    ConversationFilter,
    ConversationLinker,
    ConversationRepository,
    IndexSlice,
    MessageRepository,
    NumberRepository,
    OptOutRepository,
    SearchHit,
    SearchIndex,
    UnreadCounts,
)
from parley.services.inbox import NotFound
from parley.services.mailbox import inbound_newer
from parley.services.records import NewRecord, RecordService

T = TypeVar("T")

MARK_ALL_PAGE = 100  # conversations read per index read when marking all read
MARK_ALL_PAGES = 10  # index reads per call: a bigger set answers a cursor to go on from
_READ_ATTEMPTS = 3  # tries of a read up to a message, against texts arriving meanwhile


class AlreadyLinked(Exception):
    """The conversation has a record other than a lead the routing made (409)."""


@dataclass(frozen=True)
class ConversationPage:
    conversations: list[ConversationView]
    cursor: str | None


@dataclass(frozen=True)
class MarkedRead:
    marked: int
    cursor: str | None  # more may be unread: call again with it


class Positions:
    """The cursor of a merged list: each team's position (None: from the start); a team absent is done."""

    def __init__(self, kind: str, positions: dict[str, str | None]) -> None:
        self.kind = kind
        self.positions = positions

    def encode(self) -> str | None:
        if not self.positions:
            return None
        raw = json.dumps({"k": self.kind, "p": self.positions}, separators=(",", ":"), sort_keys=True)
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, cursor: str | None, kind: str, teams: Iterable[str]) -> Positions:
        visible = sorted(set(teams))
        if not cursor:
            return cls(kind, dict.fromkeys(visible))
        try:
            value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        except (ValueError, TypeError, binascii.Error, RecursionError) as exc:
            raise ValueError("cursor is not valid") from exc
        positions = value.get("p") if isinstance(value, dict) else None
        if (
            not isinstance(value, dict)
            or value.get("k") != kind
            or not isinstance(positions, dict)
            or not all(isinstance(p, str) or p is None for p in positions.values())
            or not set(positions) <= set(visible)  # never read a team the caller doesn't see
        ):
            raise ValueError("cursor is not valid")
        return cls(kind, dict(positions))


def merge(
    slices: dict[str, IndexSlice[T]],
    starts: dict[str, str | None],
    limit: int,
    *,
    descending: bool,
) -> tuple[list[T], dict[str, str | None]]:
    """Take up to `limit` hits from several teams' slices in index order, and each team's new position.

    A hit is only taken when no team still has unread items that sort before it (its slice's
    frontier), so the pages stay in order; the team whose frontier is furthest always gets to move,
    so each call advances."""
    unfinished = [s.frontier for s in slices.values() if s.end is not None and s.frontier is not None]
    bound = (min(unfinished) if not descending else max(unfinished)) if unfinished else None
    candidates = [(hit.order, team, i) for team, s in slices.items() for i, hit in enumerate(s.hits)]
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=descending)
    taken: dict[str, int] = {}
    items: list[T] = []
    for order, team, i in candidates:
        if len(items) >= limit:
            break
        if bound is not None and (order < bound if descending else order > bound):
            break
        items.append(slices[team].hits[i].item)
        taken[team] = i + 1
    positions: dict[str, str | None] = {}
    for team, s in slices.items():
        n = taken.get(team, 0)
        if n == len(s.hits):
            if s.end is not None:
                positions[team] = s.end
        else:
            positions[team] = s.hits[n - 1].position if n else starts.get(team)
    return items, positions


class ConversationService:
    def __init__(
        self,
        *,
        conversations: ConversationRepository,
        browser: ConversationBrowser,
        search: SearchIndex,
        numbers: NumberRepository,
        contacts: ContactRepository,
        linker: ConversationLinker,
        records: RecordService,
        opt_outs: OptOutRepository,
        region: str = "US",
        messages: MessageRepository | None = None,
        unread: UnreadCounts | None = None,
    ) -> None:
        self._conversations = conversations
        self._messages = messages
        self._unread = unread
        self._opt_outs = opt_outs
        self._browser = browser
        self._search = search
        self._numbers = numbers
        self._contacts = contacts
        self._linker = linker
        self._records = records
        self._region = region

    # -- which teams a caller reads ---------------------------------------------------------------
    def teams(self, caller: Caller, team: str | None = None) -> list[str]:
        """The caller's teams; an admin's are every team that has one of our numbers (and their own)."""
        teams = set(caller.teams)
        if caller.admin:  # conversations take their team from our number; the pool's is "default"
            teams |= {n.team for n in self._numbers.all()} | {"default"}
        if team is not None:
            if not caller.sees(team):
                return []
            teams = {team}
        return sorted(teams)

    # -- lists ------------------------------------------------------------------------------------
    def list(
        self,
        caller: Caller,
        where: ConversationFilter,
        *,
        limit: int,
        cursor: str | None,
        team: str | None = None,
    ) -> ConversationPage:
        starts = Positions.decode(cursor, "activity", self.teams(caller, team)).positions
        slices = {
            t: self._browser.slice_by_activity(t, where, start=p, limit=limit) for t, p in starts.items()
        }
        items, positions = merge(slices, starts, limit, descending=True)
        return ConversationPage(self._shown(caller, items), Positions("activity", positions).encode())

    def search(
        self,
        caller: Caller,
        q: str,
        *,
        limit: int,
        cursor: str | None,
        where: ConversationFilter | None = None,
        team: str | None = None,
    ) -> ConversationPage:
        """Conversations whose number has the digits of `q` in a row (3 or more), or whose record's
        name has a word starting with each word of `q`; in term order. `where` is applied to what
        the page found (default: open and closed alike)."""
        where = where or ConversationFilter(status="all")
        query = parse_query(q)
        kind = "search:" + query.prefix
        starts = Positions.decode(cursor, kind, self.teams(caller, team)).positions
        slices = {
            t: self._search.slice_matching(t, query.prefix, start=p, limit=limit) for t, p in starts.items()
        }
        hits, positions = merge(slices, starts, limit, descending=False)
        numbers = list(dict.fromkeys(h.customer_number for h in hits if self._counts(query, h)))
        found = {c.customer_number: c for c in self._browser.get_many(numbers)}
        # the index is per team; a conversation read since is checked again all the same
        items = [
            found[n] for n in numbers if n in found and caller.sees(found[n].team) and keeps(where, found[n])
        ]
        return ConversationPage(self._shown(caller, items), Positions(kind, positions).encode())

    @staticmethod
    def _counts(query: SearchQuery, hit: SearchHit) -> bool:
        return query.matches(hit.customer_number, hit.name, hit.term)

    def _shown(
        self, caller: Caller, conversations: Sequence[Conversation]
    ) -> builtins.list[ConversationView]:
        """With each customer's consent (one batch read of the opt-out records for the page) and only
        the conflict candidates the caller sees (one batch read of those records, when any)."""
        if not conversations:
            return []
        consent = {
            o.customer_number: o for o in self._opt_outs.get_many([c.customer_number for c in conversations])
        }
        teams = self._candidate_teams(caller, conversations)
        return [
            with_candidates(caller, with_consent(c, consent.get(c.customer_number)), teams)
            for c in conversations
        ]

    def _candidate_teams(self, caller: Caller, conversations: Sequence[Conversation]) -> dict[str, str]:
        """The team of each conflict candidate of `conversations`, read now in one batch (a record's
        team may have changed since the text was routed); nothing for an admin, who sees them all. A
        record that no longer exists has no team."""
        ids = [i for c in conversations for i in c.conflict_candidates]
        if caller.admin or not ids:
            return {}
        return {record.contact_id: record.team for record in self._contacts.get_many(ids)}

    # -- one conversation -------------------------------------------------------------------------
    def get(self, caller: Caller, number: str) -> ConversationView:
        customer_number = self._number(number)
        conversation = self._conversations.get(customer_number)
        if conversation is None or not caller.sees(conversation.team):
            raise NotFound(f"no conversation with {number}")
        shown = with_consent(conversation, self._opt_outs.get(customer_number))
        return with_candidates(caller, shown, self._candidate_teams(caller, [conversation]))

    def mark_read(self, caller: Caller, number: str, seen: str | None = None) -> ConversationView:
        """Read; with `seen`, the newest message the person was shown, only up to it: inbound texts
        that arrived after it stay unread."""
        conversation = self.get(caller, number)
        messages, counts = self._messages, self._unread
        if seen is None or messages is None or counts is None:
            self._browser.mark_read(conversation.customer_number)
            return conversation.model_copy(update={"unread_count": 0})
        shown = messages.get(seen)
        if shown is None or shown.customer_number != conversation.customer_number:
            raise ValueError("'seen_message_id' must be the id of a message in this conversation")
        return conversation.model_copy(update={"unread_count": self._read_up_to(shown, messages, counts)})

    def _read_up_to(self, shown: Message, messages: MessageRepository, counts: UnreadCounts) -> int:
        """Set the unread count to the inbound texts after `shown` in thread order (time, then id),
        while no text arrives meanwhile (the write is conditional on the message count); the count
        it leaves."""
        number = shown.customer_number
        unread = 0
        for _ in range(_READ_ATTEMPTS):
            current = self._conversations.get(number)
            if current is None or current.unread_count == 0:
                return 0
            unread = current.unread_count
            count = 0
            if current.last_message_id != shown.message_id:
                count, read = inbound_newer(messages, shown, cap=unread)
                if count < unread and current.last_message_id not in read:
                    continue  # the thread's index doesn't list the newest text yet: count again
            if counts.set_unread(number, count, message_count=current.message_count):
                return count
        return unread  # it kept changing: left as it was, so nothing unseen is marked read

    def close(self, caller: Caller, number: str) -> ConversationView:
        return self._set_closed(caller, number, True)

    def reopen(self, caller: Caller, number: str) -> ConversationView:
        return self._set_closed(caller, number, False)

    def _set_closed(self, caller: Caller, number: str, closed: bool) -> ConversationView:
        conversation = self.get(caller, number)
        self._browser.set_closed(conversation.customer_number, closed)
        return conversation.model_copy(update={"closed": closed})

    def mark_all_read(
        self,
        caller: Caller,
        *,
        our_number: str | None = None,
        cursor: str | None = None,
        pages: int = MARK_ALL_PAGES,
        page_size: int = MARK_ALL_PAGE,
    ) -> MarkedRead:
        """Every visible unread conversation (that used `our_number`), open or closed, read; at most
        `pages` index reads of `page_size` per team each call, then a cursor to go on from."""
        where = ConversationFilter(our_number=our_number, unread=True, status="all")
        marked = 0
        for _ in range(pages):
            page = self.list(caller, where, limit=page_size, cursor=cursor)
            for conversation in page.conversations:
                self._browser.mark_read(conversation.customer_number)
                marked += 1
            cursor = page.cursor
            if cursor is None:
                break
        return MarkedRead(marked, cursor)

    # -- add a contact ----------------------------------------------------------------------------
    def add_contact(self, caller: Caller, number: str, data: dict[str, Any]) -> ContactRecord:
        """A record for the conversation's number, linked to it: for a conversation with no record,
        or only a lead the routing made."""
        conversation = self.get(caller, number)
        if conversation.contact_id:
            linked = self._contacts.get(conversation.contact_id)
            if linked is not None and not made_by_parley(linked):
                raise AlreadyLinked(
                    f"the conversation is linked to {linked.record_type} {linked.contact_id!r} already, "
                    "a record of the CRM's or a person's; only a lead made for an unknown number is replaced"
                )
        phones = data.get("phones", [])
        if not isinstance(phones, list):
            raise ValueError("'phones' must be a list of numbers (the conversation's is added first)")
        draft = NewRecord.model_validate({**data, "phones": [conversation.customer_number, *phones]})
        record = self._records.create(draft, team=conversation.team, user=caller.user)
        self._linker.link(
            conversation.customer_number,
            contact_id=record.contact_id,
            owner=record.owner,
            reason=f"added by {caller.user or 'a person'}",
        )
        return record

    def _number(self, raw: str) -> str:
        try:
            return normalize_e164(raw, region=self._region, require_mobile=False)
        except InvalidPhoneNumber as exc:
            raise NotFound(f"no conversation with {raw}: {exc}") from exc


def with_consent(conversation: Conversation, opt_out: OptOut | None) -> ConversationView:
    """The conversation as shown: whether its customer opted out, from all our numbers or some, and
    the numbers that may text them again despite an opt-out from all (what sending decides by)."""
    return ConversationView(
        **dict(conversation),
        opted_out=opt_out is not None and opt_out.opted_out,
        opted_out_of=list(opt_out.numbers) if opt_out is not None else [],
        opted_in_to=sorted(n for n in opt_out.opted_in_since() if not opt_out.blocks(n)) if opt_out else [],
    )


def with_candidates(
    caller: Caller, conversation: ConversationView, teams: dict[str, str]
) -> ConversationView:
    """The conversation with only the conflict candidates whose records the caller sees (an admin:
    all); another team's record, like one that no longer exists, is left out and only counted in
    `hidden_candidates`, so a conversation whose tied records are all hidden still shows as tied."""
    if caller.admin or not conversation.conflict_candidates:
        return conversation
    shown = [i for i in conversation.conflict_candidates if i in teams and caller.sees(teams[i])]
    hidden = len(conversation.conflict_candidates) - len(shown)
    return conversation.model_copy(update={"conflict_candidates": shown, "hidden_candidates": hidden})


def keeps(where: ConversationFilter, conversation: Conversation) -> bool:
    """Whether `where` keeps the conversation: what the adapters' filter expressions say."""
    return (
        (where.our_number is None or where.our_number in conversation.our_numbers)
        and (where.owner is None or conversation.owner == where.owner)
        and (where.unread is None or (conversation.unread_count > 0) == where.unread)
        and (where.status == "all" or conversation.closed == (where.status == "closed"))
    )


def conversation_filter(
    get: Callable[[str], str | None], *, region: str = "US", default_status: str = "open"
) -> ConversationFilter:
    """The list's filters from query parameters, each refused with its reason."""
    our_number = get("our_number")
    owner = get("owner")
    unread_raw = get("unread")
    status = get("status") or default_status
    if status not in ("open", "closed", "all"):
        raise ValueError(f"'status' must be open, closed or all, not {status!r:.40}")
    unread: bool | None = None
    if unread_raw is not None:
        if unread_raw not in ("true", "false"):
            raise ValueError(f"'unread' must be true or false, not {unread_raw!r:.40}")
        unread = unread_raw == "true"
    if owner is not None and not 0 < len(owner) <= 200:
        raise ValueError("'owner' must be 1 to 200 characters")
    number = None
    if our_number is not None:
        try:
            number = normalize_e164(our_number, region=region, require_mobile=False)
        except InvalidPhoneNumber as exc:
            raise ValueError(f"'our_number': {exc}") from exc
    return ConversationFilter(our_number=number, owner=owner, unread=unread, status=status)
