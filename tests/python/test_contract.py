"""The binding contract: error codes, event fields, stats fields and the
version reach Python from the C headers (through SWIG), not from copies;
cached tags survive stale event snapshots; handlers catch Exception only."""
import asyncio
import importlib.metadata
import os
import re
import sys
import threading
import time

import pytest
import websockets

import libwebsock2
import libwebsock2.aio
from libwebsock2 import _errors, _websock
from conftest import ROOT, run


def header(name):
    with open(os.path.join(ROOT, "include", "websock", name), encoding="utf-8") as f:
        return re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)  # without comments


def struct_fields(text, name):
    """The member names of ``typedef struct name {...} name;``, in order."""
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), text, re.S)
    assert body, name
    return [re.findall(r"(\w+)\s*$", decl.strip())[0]
            for decl in body.group(1).split(";") if decl.strip()]


def url(srv, path="/"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def test_version_comes_from_the_c_library():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        want = re.search(r"project\(\s*libwebsock2\s+VERSION\s+([0-9.]+)", f.read()).group(1)
    assert libwebsock2.__version__ == libwebsock2.core_version() == want
    assert _websock.VERSION_STRING == want  # the header the extension was built with
    assert importlib.metadata.version("libwebsock2") == want  # setup.py's metadata


def test_error_codes_are_the_headers():
    in_header = {name: int(value) for name, value in
                 re.findall(r"WEBSOCK_(ERR_\w+)\s*=\s*(-?\d+)", header("error.h"))}
    in_module = {name: value for name, value in vars(_websock).items()
                 if name.startswith("ERR_")}
    assert in_module == in_header and in_header
    classes = _errors.error_classes()
    assert sorted(classes) == sorted(in_header.values())
    for code, cls in classes.items():
        assert cls.code == code and issubclass(cls, libwebsock2.Error)
        err = libwebsock2.error_for(code)
        assert type(err) is cls and err.error_code == code
        if issubclass(cls, libwebsock2.ConnectionClosed):
            # websockets' habit: a ConnectionClosed's .code is the close
            # code (1006 when none is known); the core's code is error_code
            assert (err.code, err.reason) == (1006, "")
        else:
            assert err.code == code
        assert str(err) == _websock.websock_strerror(code)
    # the public names are kept, each bound to its constant
    assert libwebsock2.NoSuchClient.code == _websock.ERR_NO_SUCH_CLIENT
    assert libwebsock2.TagTaken.code == _websock.ERR_TAG_TAKEN
    assert libwebsock2.ConnectionClosed.code == _websock.ERR_CLOSING
    assert issubclass(libwebsock2.InvalidArgument, ValueError)
    # the threaded API's NoSuchClient is a ConnectionClosed (websockets' habit)
    assert issubclass(libwebsock2.NoSuchClient, libwebsock2.ConnectionClosed)
    for cls in (libwebsock2.ConnectionClosedOK, libwebsock2.ConnectionClosedError):
        assert issubclass(cls, libwebsock2.ConnectionClosed)
        assert libwebsock2.aio.__dict__[cls.__name__] is cls


def test_event_record_has_websock_event_fields_in_its_order():
    names = list(_websock.Event.__match_args__) if sys.version_info >= (3, 10) else None
    if names is None:
        pytest.skip("struct sequences list their fields from Python 3.10 on")
    event = struct_fields(header("event.h"), "websock_event")
    assert names == [f for f in event if f in names], (names, event)
    assert set(event) - set(names) == {"length", "user_data", "server"}


def test_handlers_get_connections_made_from_event_records(make_server):
    seen = []
    done = threading.Event()

    class Recording(libwebsock2.Server):
        def _dispatch(self, ev):
            seen.append(ev)
            super()._dispatch(ev)

    srv = Recording(port=0, agents=1)
    srv.on_close(lambda conn, code, reason: done.set())
    srv.start()
    try:
        async def client():
            async with websockets.connect(url(srv, "/p?q=1")) as ws:
                await ws.send(b"\x00")
                await ws.close(4001, "bye")
        run(client())
        assert done.wait(5)
    finally:
        srv.stop()
    assert all(isinstance(ev, _websock.Event) for ev in seen)
    assert [ev.type for ev in seen] == [_websock.EVENT_OPEN, _websock.EVENT_MESSAGE,
                                        _websock.EVENT_CLOSE]
    opened, message, closed = seen
    assert (opened.path, opened.query, opened.tag) == ("/p", "q=1", None)
    assert opened.remote_addr.startswith("127.0.0.1:")
    assert (message.opcode, message.data) == (_websock.OP_BINARY, b"\x00")
    assert (closed.close_code, closed.data) == (4001, "bye")
    assert len({ev.id for ev in seen}) == 1


def test_stats_has_every_field_of_the_stats_structs(make_server):
    srv = make_server(io_threads=2, agents=3).start()

    async def client():
        for _ in range(3):
            async with websockets.connect(url(srv)) as ws:
                await ws.send("x")

    run(client())
    # open, message and close of 3 connections, run by the agents (a close
    # may still be on its way when the client is done)
    deadline = time.monotonic() + 10
    st = srv.stats()
    while sum(st["agent_events"]) < 9 and time.monotonic() < deadline:
        time.sleep(0.01)
        st = srv.stats()
    text = header("server.h")
    fields = struct_fields(text, "websock_stats")
    per_loop = struct_fields(text, "websock_loop_stats")
    per_agent = struct_fields(text, "websock_agent_stats")
    assert {"ready_connections", "ready_wait_max_ns"} <= set(fields)
    assert set(fields) <= set(st) and {"connections", "loop_accepted", "agent_busy_ns"} <= set(st)
    for prefix, names, count in (("loop", per_loop, st["io_threads"]),
                                 ("agent", per_agent, st["agents"])):
        for name in names:
            assert len(st[prefix + "_" + name]) == count, (prefix, name)
    assert set(st) == (set(fields) | {"loop_" + n for n in per_loop} |
                       {"agent_" + n for n in per_agent})
    assert "agent_connections" not in st and "agent_accepted" not in st
    assert (st["io_threads"], st["agents"]) == (2, 3)
    assert sum(st["loop_accepted"]) == st["accepted_total"] == 3
    assert sum(st["agent_events"]) == 9 and st["loop_events"] == [0, 0]
    assert sum(st["agent_busy_ns"]) > 0
    assert all(isinstance(v, int) and v >= 0 for v in st["agent_busy_ns"])
    assert st["ready_connections"] == 0 and st["ready_wait_max_ns"] >= 0


def test_stats_of_queued_and_inline_servers_have_empty_agent_lists(make_server):
    srv = make_server(io_threads=2, agents=0).start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            await ws.send("x")

    run(client())
    deadline = time.monotonic() + 10
    st = srv.stats()
    while sum(st["loop_events"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
        st = srv.stats()
    assert st["agents"] == 0 and st["agent_events"] == [] and st["agent_busy_ns"] == []
    assert sum(st["loop_events"]) == 3  # open, message, close run inline

    async def aio_stats():
        async with libwebsock2.aio.serve(None, "127.0.0.1", 0, io_threads=2) as a:
            return a.stats()

    st = run(aio_stats())
    assert st["agents"] == 0 and st["agent_events"] == [] and len(st["loop_events"]) == 2
    assert st["ready_connections"] == 0


# -- a cached tag is not reverted by the tag snapshot of a later event -------
#
# The core copies the tag into an event when user code is about to see it
# (DIRECT: on the agent, just before the callback; QUEUED: when polled), so
# a set_tag() from another thread, or one done after a batch was polled,
# races with events that already carry the old tag. Such records are
# replayed here exactly as the core delivers them.

def record(**fields):
    """An Event record as the core would deliver it (unnamed fields 0/None)."""
    names = _websock.Event.__match_args__
    return _websock.Event(tuple(fields.get(n, 0 if n in ("opcode", "close_code") else None)
                                for n in names))


def stale_message(conn_id, tag, text):
    return record(type=_websock.EVENT_MESSAGE, id=conn_id, tag=tag,
                  opcode=_websock.OP_TEXT, data=text)


needs_names = pytest.mark.skipif(sys.version_info < (3, 10),
                                 reason="Event.__match_args__ needs Python 3.10")


@needs_names
def test_threads_stale_event_does_not_revert_set_tag(make_server):
    seen = []
    srv = make_server(agents=1)
    srv.on_message(lambda conn, msg: seen.append((msg, conn.tag)))
    opened = threading.Event()
    srv.on_open(lambda conn: opened.set())
    srv.start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            assert await asyncio.get_running_loop().run_in_executor(None, opened.wait, 5)
            (conn,) = srv.connections.values()
            conn.set_tag("alice")
            srv._dispatch(stale_message(conn.id, None, "queued before set_tag"))
            srv.set_tag(conn.id, None)
            srv._dispatch(stale_message(conn.id, "alice", "queued before the clear"))
            assert srv.get_tag(conn.id) is None and conn.tag is None
            await ws.close()

    run(client())
    assert seen == [("queued before set_tag", "alice"), ("queued before the clear", None)]


@needs_names
def test_aio_stale_event_does_not_revert_set_tag():
    seen = []

    async def main():
        opened = asyncio.Event()
        srv = libwebsock2.aio.Server(port=0)

        @srv.on_open
        async def o(conn):
            opened.set()

        @srv.on_message
        async def got(conn, msg):
            seen.append((msg, conn.tag))

        async with srv:
            async with websockets.connect(url(srv)) as ws:
                await asyncio.wait_for(opened.wait(), 5)
                (conn,) = srv.connections.values()
                conn.set_tag("alice")
                srv._dispatch(stale_message(conn.id, None, "polled before set_tag"))
                await asyncio.sleep(0.05)
                srv.set_tag(conn.id, None)
                srv._dispatch(stale_message(conn.id, "alice", "polled before the clear"))
                await asyncio.sleep(0.05)
                await ws.close()

    run(main())
    assert seen == [("polled before set_tag", "alice"), ("polled before the clear", None)]


def tag_event(conn_id, tag, status, now=None):
    """The TAG event of a cluster claim's outcome, as the core delivers it:
    ``data`` the claimed tag, ``tag`` (``now``) the connection's tag when
    it is delivered (after a refusal: its tag of before again, or None)."""
    return record(type=_websock.EVENT_TAG, id=conn_id, tag=now, data=tag, status=status)


# (Without Redis: the records replayed on a server of no cluster, whose
# core holds the tag set_tag gave; conn._tag set by hand is a pending claim
# as conn.tag shows it. test_cluster.py has the real ones.)

@needs_names
def test_threads_tag_event_reaches_on_tag_and_gives_the_old_tag_back(make_server):
    seen = []
    srv = make_server(agents=1)
    srv.on_tag(lambda conn, tag, error: seen.append((tag, type(error).__name__, conn.tag)))
    opened = threading.Event()
    srv.on_open(lambda conn: opened.set())
    srv.start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            assert await asyncio.get_running_loop().run_in_executor(None, opened.wait, 5)
            (conn,) = srv.connections.values()
            assert conn.set_tag("alice") is True  # no cluster: settled now
            srv._dispatch(tag_event(conn.id, "alice", 0, "alice"))
            # a claim replaced meanwhile: conn.tag kept
            srv._dispatch(tag_event(conn.id, "bob", _websock.ERR_TAG_TAKEN, "alice"))
            assert conn.tag == "alice"
            # refused while it shows the claimed tag: the tag of before
            # (the record's; the core holds alice) is its tag again
            conn._tag = "bob"
            srv._dispatch(tag_event(conn.id, "bob", _websock.ERR_TAG_TAKEN, "alice"))
            assert conn.tag == "alice"
            conn._tag = "bob"
            srv._dispatch(tag_event(conn.id, "bob", _websock.ERR_CLUSTER, "alice"))
            assert conn.tag == "alice"
            # a record copied before a set_tag of the refused tag again (from
            # another thread): the core has that tag, so conn.tag keeps it
            assert srv.set_tag(conn.id, "dora") is True
            srv._dispatch(tag_event(conn.id, "dora", _websock.ERR_TAG_TAKEN, "alice"))
            assert conn.tag == "dora" and srv.get_tag(conn.id) == "dora"
            # no tag before (or a tag lost unasked): None
            assert conn.set_tag(None) is True
            srv.on_tag(None)  # without a handler the outcome still counts
            conn._tag = "carol"
            srv._dispatch(tag_event(conn.id, "carol", _websock.ERR_TAG_TAKEN))
            assert conn.tag is None
            await ws.close()

    run(client())
    assert seen == [("alice", "NoneType", "alice"), ("bob", "TagTaken", "alice"),
                    ("bob", "TagTaken", "alice"), ("bob", "ClusterError", "alice"),
                    ("dora", "TagTaken", "dora")]


@needs_names
def test_aio_tag_event_reaches_on_tag_in_order():
    seen = []

    async def main():
        opened = asyncio.Event()
        srv = libwebsock2.aio.Server(port=0)

        @srv.on_open
        async def o(conn):
            opened.set()

        @srv.on_message
        async def got(conn, msg):
            await asyncio.sleep(0.05)  # the TAG event waits for this one
            seen.append(("message", msg, conn.tag))

        @srv.on_tag
        async def tagged(conn, tag, error):
            seen.append(("tag", tag, type(error).__name__, conn.tag))

        async with srv:
            async with websockets.connect(url(srv)) as ws:
                await asyncio.wait_for(opened.wait(), 5)
                (conn,) = srv.connections.values()
                conn.set_tag("old")
                conn._tag = "alice"  # claimed, pending
                srv._dispatch(stale_message(conn.id, "alice", "first"))
                srv._dispatch(tag_event(conn.id, "alice", _websock.ERR_TAG_TAKEN, "old"))
                assert conn.tag == "old"  # given back as the event is read
                await asyncio.sleep(0.2)
                await ws.close()

    run(main())
    assert seen == [("message", "first", "old"), ("tag", "alice", "TagTaken", "old")]


@needs_names
def test_aio_claim_tag_settled_by_the_outcome_of_its_claim():
    """claim_tag waits for the TAG event of its tag; a refusal that comes
    while the core has the tag claimed again (a set_tag of it after the
    refusal) is not that claim's outcome: the next event settles it."""
    got = []

    async def main():
        opened = asyncio.Event()
        srv = libwebsock2.aio.Server(port=0)

        @srv.on_open
        async def o(conn):
            opened.set()

        def pending(conn_id, conn, tag):  # set_tag on a cluster: pending
            conn._tag = tag
            return False

        async with srv:
            async with websockets.connect(url(srv)) as ws:
                await asyncio.wait_for(opened.wait(), 5)
                (conn,) = srv.connections.values()
                assert conn.set_tag("alice") is True  # the core holds alice
                srv._set_tag = pending

                async def claim(tag):
                    try:
                        await conn.claim_tag(tag)
                        got.append((tag, None, conn.tag))
                    except libwebsock2.Error as e:
                        got.append((tag, type(e).__name__, conn.tag))

                task = asyncio.ensure_future(claim("alice"))
                await asyncio.sleep(0.05)
                srv._dispatch(tag_event(conn.id, "alice", _websock.ERR_TAG_TAKEN, "old"))
                await asyncio.sleep(0.05)
                assert not task.done() and conn.tag == "alice"
                srv._dispatch(tag_event(conn.id, "alice", 0, "alice"))
                await asyncio.wait_for(task, 5)
                # refused, the core showing its tag of before: raised
                task = asyncio.ensure_future(claim("bob"))
                await asyncio.sleep(0.05)
                srv._dispatch(tag_event(conn.id, "bob", _websock.ERR_TAG_TAKEN, "alice"))
                await asyncio.wait_for(task, 5)
                del srv._set_tag
                await ws.close()

    run(main())
    assert got == [("alice", None, "alice"), ("bob", "TagTaken", "alice")]


@pytest.mark.parametrize("agents", [0, 1, 2])
def test_threads_set_tag_seen_by_the_next_pipelined_message(make_server, agents):
    srv = make_server(agents=agents)

    @srv.on_message
    def got(conn, msg):
        if msg.startswith("tag:"):
            time.sleep(0.1)  # the next message is read meanwhile
            conn.set_tag(msg[4:] or None)
        conn.send("%s=%s" % (msg, conn.tag))

    srv.start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            for m in ("tag:alice", "info", "tag:", "info"):
                await ws.send(m)
            got = [await ws.recv() for _ in range(4)]
            assert got == ["tag:alice=alice", "info=alice", "tag:=None", "info=None"]

    run(client())


def test_handlers_catch_exception_not_base_exception(make_server, monkeypatch, caplog):
    class Fatal(BaseException):
        pass

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_type))
    srv = make_server(agents=1)

    @srv.on_message
    def got(conn, msg):
        if msg == "fatal":
            raise Fatal()
        conn.send(msg)

    srv.start()

    async def client():
        async with websockets.connect(url(srv)) as ws:
            await ws.send("fatal")
            await ws.send("still open")
            assert await ws.recv() == "still open"  # not closed with 1011

    run(client())
    assert unraisable == [Fatal]  # reported by the C trampoline, not swallowed
    assert not any("raised for connection" in r.getMessage() for r in caplog.records)


def test_threads_and_asyncio_share_one_implementation():
    # One base: what both front ends do alike is the same code, not a copy.
    for name in ("send", "send_tag", "broadcast", "ping", "close_client", "close_tag",
                 "set_tag", "get_tag", "find_tag", "stats", "connections", "port",
                 "on_open", "on_message", "on_close"):
        assert getattr(libwebsock2.Server, name) is getattr(libwebsock2.aio.Server, name), name
    for name in ("tag", "set_tag", "send_nowait", "remote_address", "server", "__repr__"):
        assert (getattr(libwebsock2.Connection, name) is
                getattr(libwebsock2.aio.Connection, name)), name
