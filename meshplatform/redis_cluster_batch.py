"""Auto-pipelining on a Redis Cluster (REDIS_CLUSTER): each batch split by the node owning each
command's key slot, one connection and one batch in flight per node.

The batcher learns the slot map (CLUSTER SLOTS) from the node REDIS_URL names, routes each command
by its key's slot (every key a script touches shares a hash tag, so one slot per command), writes
each node's part over that node's `PipeProtocol` (nodes in parallel: one round trip per node), and
each caller gets its own reply. Commands to one node keep their order; across nodes there is none,
as on any cluster.

Redirections. A MOVED or ASK reply proves the node did not run the command, so only such a
command is sent again (MOVED: to the slot's new owner, whose address the reply names, and the map
is refreshed in the background; ASK: once to the importing node, after ASKING). Nothing else is
retried: a node that fails or times out fails the callers of its own batch, as the single-server
batcher does (a retried billing script could count twice); the other nodes' callers are served.
SCRIPT LOAD goes to every primary, so EVALSHA finds its script wherever it runs.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from redis.asyncio.connection import SSLConnection, parse_url
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import AskError, MovedError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from meshplatform.redis_batch import Command, PipeProtocol

Address = tuple[str, int]

# Routes that are not a slot: any one node, every primary, one given node (the batcher's own).
ANY_NODE = -1
EVERY_PRIMARY = -2
GIVEN_NODE = -3
# A command redirected more often than this (a cluster reshaping faster than we follow) fails.
MAX_REDIRECTS = 5

_KEYS_AFTER_NUMKEYS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})
_ANY_NODE = frozenset({"PING", "ECHO", "TIME"})
_EVERY_PRIMARY = frozenset({"SCRIPT"})  # SCRIPT LOAD must reach each node that will run the script
# Keyless or with keys elsewhere than after the name: routing them by their first argument would
# send them to a wrong node (use `get_redis()`, the cluster client, for these).
_UNROUTABLE = frozenset(
    {
        "BITOP", "BLMPOP", "BZMPOP", "CLIENT", "CLUSTER", "CONFIG", "DBSIZE", "EXEC", "FLUSHALL",
        "FLUSHDB", "INFO", "KEYS", "LMPOP", "MIGRATE", "MEMORY", "MULTI", "OBJECT", "RANDOMKEY",
        "SCAN", "SELECT", "SINTERCARD", "SUBSCRIBE", "WATCH", "XREAD", "XREADGROUP", "ZMPOP",
        "ZDIFF", "ZINTER", "ZINTERCARD", "ZUNION",
    }
)  # fmt: skip


class UnroutableCommand(ValueError):
    """The batcher cannot tell which node owns this command's keys."""


def _encoded(value: Any) -> bytes:
    """A key's bytes as redis-py's encoder writes them (so its slot is the server's)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    raise UnroutableCommand(f"a key must be str, bytes or a number, not {type(value).__name__}")


def command_route(command: Command) -> int:
    """The hash slot of the command's (first) key, or ANY_NODE / EVERY_PRIMARY for keyless ones."""
    if not command:
        raise UnroutableCommand("an empty command")
    raw = command[0]
    name = (raw.decode() if isinstance(raw, bytes) else str(raw)).upper()
    if name in _KEYS_AFTER_NUMKEYS:
        if len(command) < 3 or int(command[2]) < 0:
            raise UnroutableCommand(f"{name} without numkeys")
        return key_slot(_encoded(command[3])) if int(command[2]) > 0 else ANY_NODE
    if name in _ANY_NODE:
        return ANY_NODE
    if name in _EVERY_PRIMARY:
        return EVERY_PRIMARY
    if name in _UNROUTABLE or len(command) < 2:
        raise UnroutableCommand(f"{name} cannot be auto-pipelined on a cluster; use get_redis()")
    return key_slot(_encoded(command[1]))


@dataclass(slots=True, eq=False)
class Entry:
    """One caller's command on its way: where it goes and how often it was redirected."""

    command: Command
    future: asyncio.Future[Any]
    route: int
    redirects: int = 0
    asking: bool = False


@dataclass(slots=True, eq=False)
class NodeLink:
    """One primary's connection: its queue, its one batch in flight and that batch's timer."""

    batcher: ClusterCommandBatcher
    address: Address
    protocol: PipeProtocol | None = None
    pending: list[Entry] = field(default_factory=list)
    in_flight: list[Entry] | None = None
    timer: asyncio.TimerHandle | None = None
    batches_sent: int = 0  # round trips, for tests and the curious

    def flush(self) -> None:
        if self.in_flight is not None or not self.pending:
            return
        batch, self.pending = self.pending, []
        self.in_flight = batch
        if self.protocol is None:
            self.batcher.keep(self.batcher.loop.create_task(self._connect_then_write(batch)))
            return
        self._write(self.protocol, batch)

    def _write(self, protocol: PipeProtocol, batch: list[Entry]) -> None:
        wire: list[Command] = []
        for entry in batch:
            if entry.asking:
                wire.append(("ASKING",))
            wire.append(entry.command)
        self.batches_sent += 1
        timeout_s = self.batcher.timeout_s
        failure = RedisTimeoutError(f"Redis node {self.address_text} did not answer within {timeout_s}s")
        self.timer = self.batcher.loop.call_later(timeout_s, protocol.abort, failure)
        protocol.send(wire, self._replied)

    def _replied(self, replies: list[Any] | BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.in_flight = self.in_flight or [], None
        if isinstance(replies, BaseException):
            for entry in batch:
                _settle(entry, replies)
            self.batcher.node_failed()
        else:
            answers = iter(replies)
            for entry in batch:
                if entry.asking:
                    next(answers)  # ASKING's own OK; the command's reply follows
                self.batcher.answer(self, entry, next(answers))
        self.batcher.schedule()

    async def _connect_then_write(self, batch: list[Entry]) -> None:
        try:
            async with asyncio.timeout(self.batcher.timeout_s):
                protocol = await self.batcher.connect(self)
        except (RedisError, OSError) as error:
            failure: BaseException = error
            if isinstance(error, TimeoutError) and not isinstance(error, RedisError):
                failure = RedisTimeoutError(f"Redis node {self.address_text} could not be reached in time")
            self._replied(failure)
            return
        except BaseException as error:  # cancelled (the loop ends) or a bug: callers hear of it
            self._replied(RedisError(f"batched Redis call failed: {error!r}"))
            raise
        self.protocol = protocol
        self._write(protocol, batch)

    def lost(self, protocol: PipeProtocol) -> None:
        if protocol is self.protocol:
            self.protocol = None

    @property
    def address_text(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"


def _settle(entry: Entry, reply: Any) -> None:
    if entry.future.done():  # its caller was cancelled; the command ran anyway
        return
    if isinstance(reply, BaseException):
        entry.future.set_exception(reply)
    else:
        entry.future.set_result(reply)


def _fan_in(target: asyncio.Future[Any], gathered: asyncio.Future[list[Any]]) -> None:
    """A command sent to every primary: the first node's reply, or the first failure."""
    if target.done():
        return
    replies = gathered.result()
    failures = [reply for reply in replies if isinstance(reply, BaseException)]
    if failures:
        target.set_exception(failures[0])
    else:
        target.set_result(replies[0])


def slot_map_parse(reply: list[Any], asked: Address) -> list[Address]:
    """CLUSTER SLOTS as the owner (primary) of each of the 16384 slots."""
    owners: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    for start, end, primary, *_replicas in reply:
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        address = (host or asked[0], int(primary[1]))  # "" : the node asked does not know its name
        owners[int(start) : int(end) + 1] = [address] * (int(end) - int(start) + 1)
    missing = sum(owner is None for owner in owners)
    if missing:
        raise RedisError(f"the cluster does not cover {missing} of its hash slots")
    return [owner for owner in owners if owner is not None]


class ClusterCommandBatcher:
    """The batching state of one event loop on a cluster: the slot map and one link per node."""

    def __init__(self, *, url: str | None = None, timeout_s: float | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        options: Any = parse_url(url or settings.REDIS_URL)
        self.seed: Address = (str(options.get("host", "localhost")), int(options.get("port", 6379)))
        self.username: str | None = options.get("username")
        self.password: str | None = options.get("password")
        self.ssl_context: ssl.SSLContext | None = None
        if options.pop("connection_class", None) is SSLConnection:
            self.ssl_context = SSLConnection(**options).ssl_context.get()
        self.timeout_s: float = settings.REDIS_COMMAND_TIMEOUT_S if timeout_s is None else timeout_s
        self.slots: list[Address] | None = None
        self.links: dict[Address, NodeLink] = {}
        self.unrouted: list[Entry] = []
        self.flush_scheduled = False
        self.refreshing = False
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Nothing waiting for the slot map, queued for a node or in flight to one."""
        if self.unrouted:
            return False
        return all(not link.pending and link.in_flight is None for link in self.links.values())

    def submit(self, command: Command) -> asyncio.Future[Any]:
        route = command_route(command)  # an unroutable command fails here, before anything is sent
        future: asyncio.Future[Any] = self.loop.create_future()
        self.unrouted.append(Entry(command, future, route))
        self.schedule()
        return future

    def schedule(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.unrouted:
            if self.slots is None:
                self.refresh()  # the commands wait for the map
            else:
                entries, self.unrouted = self.unrouted, []
                for entry in entries:
                    self._route(entry, self.slots)
        for link in list(self.links.values()):
            link.flush()

    def _route(self, entry: Entry, slots: list[Address]) -> None:
        # A command whose caller was cancelled still runs, as on one server (billing is not undone
        # by a client hanging up); only its reply goes nowhere.
        if entry.route == EVERY_PRIMARY:
            children: list[asyncio.Future[Any]] = []
            for address in sorted(set(slots)):
                child = Entry(entry.command, self.loop.create_future(), GIVEN_NODE)
                self.link(address).pending.append(child)
                children.append(child.future)
            gathered = asyncio.gather(*children, return_exceptions=True)
            gathered.add_done_callback(partial(_fan_in, entry.future))
            return
        address = slots[0] if entry.route == ANY_NODE else slots[entry.route]
        self.link(address).pending.append(entry)

    def answer(self, link: NodeLink, entry: Entry, reply: Any) -> None:
        """A reply to its caller, or the command on to where a MOVED or ASK reply sends it."""
        if not isinstance(reply, AskError) or entry.route < 0 or entry.redirects >= MAX_REDIRECTS:
            _settle(entry, reply)
            return
        entry.redirects += 1
        target = (reply.host or link.address[0], int(reply.port))
        if isinstance(reply, MovedError):  # the slot has a new owner: follow it now, relearn the rest
            if self.slots is not None:
                self.slots[reply.slot_id] = target
            entry.asking = False
            self.unrouted.append(entry)
            self.refresh()
        else:  # the slot is migrating and the key is on the importing node: ask it, this once
            entry.asking = True
            self.link(target).pending.append(entry)

    def node_failed(self) -> None:
        """A node dropped or timed out: it may have failed over, so relearn who owns what."""
        if self.slots is not None:
            self.refresh()

    def refresh(self) -> None:
        """Ask a node (one already connected, else the seed) for the slot map, in its next batch."""
        if self.refreshing:
            return
        self.refreshing = True
        link = next((link for link in self.links.values() if link.protocol is not None), None)
        link = link or self.link(self.seed)
        future: asyncio.Future[Any] = self.loop.create_future()
        future.add_done_callback(partial(self._refreshed, link.address))
        link.pending.append(Entry(("CLUSTER", "SLOTS"), future, GIVEN_NODE))
        self.schedule()

    def _refreshed(self, asked: Address, future: asyncio.Future[Any]) -> None:
        self.refreshing = False
        error = future.exception()
        if error is None:
            try:
                self.slots = slot_map_parse(future.result(), asked)
            except (RedisError, ValueError, TypeError, IndexError) as bad_reply:
                error = bad_reply if isinstance(bad_reply, RedisError) else RedisError(repr(bad_reply))
        if error is not None and self.slots is None:  # the commands waiting for a first map fail
            waiting, self.unrouted = self.unrouted, []
            for entry in waiting:
                _settle(entry, error)
        self.schedule()

    def link(self, address: Address) -> NodeLink:
        link = self.links.get(address)
        if link is None:
            link = self.links[address] = NodeLink(self, address)
        return link

    async def connect(self, link: NodeLink) -> PipeProtocol:
        """A connection to the link's node, AUTH done as redis-py sends it (a cluster has no SELECT)."""
        protocol = PipeProtocol(link.lost)
        host, port = link.address
        await self.loop.create_connection(lambda: protocol, host, port, ssl=self.ssl_context)
        try:
            if self.password is not None:
                done: asyncio.Future[list[Any] | BaseException] = self.loop.create_future()

                def replied(replies: list[Any] | BaseException) -> None:
                    if not done.done():  # not after a timeout cancelled the wait
                        done.set_result(replies)

                auth = ("AUTH", *((self.username,) if self.username else ()), self.password)
                protocol.send([auth], replied)
                for reply in _replies(await done):
                    if isinstance(reply, BaseException):
                        raise reply
        except BaseException:  # refused, timed out or cancelled: this connection is not used
            if protocol.transport is not None:
                protocol.transport.abort()
            raise
        return protocol

    def keep(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self.tasks.discard)


def _replies(replies: list[Any] | BaseException) -> Iterator[Any]:
    if isinstance(replies, BaseException):
        yield replies
    else:
        yield from replies
