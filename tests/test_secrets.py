"""The token and header values never leave the client: no log record, repr, error text or chained cause.

Every logger is at DEBUG (root and every logger that exists, hpack, h2, grpclib, aiohttp and asyncio
included), and every operation runs, sync and async, on every protocol, when it succeeds and when it fails
(nothing listening, a TLS server whose CA the client does not trust, a wrong token). Each log record is
formatted whole (with its traceback), and each exception is walked through its causes, contexts and args.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

import pytest

from aclip import (
    AclipError,
    AsyncClient,
    AuthenticationError,
    Client,
    ConnectError,
    Document,
    DocumentList,
    TLSError,
)
from aclip._cli import main
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Certificates

TOKEN = "tok-" + secrets.token_hex(12)
WRONG_TOKEN = "wrong-" + secrets.token_hex(12)
API_KEY = "key-" + secrets.token_hex(12)  # a client header
CALL_SECRET = "call-" + secrets.token_hex(12)  # a call's own header
SECRETS = (TOKEN, WRONG_TOKEN, API_KEY, CALL_SECRET)

#: The loggers of every library that takes part, created now so that each exists when the levels are set.
LIBRARY_LOGGERS = (
    "aclip",
    "hpack",
    "hpack.hpack",
    "hpack.table",
    "h2",
    "grpclib",
    "grpclib.client",
    "grpclib.protocol",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.websocket",
    "asyncio",
)
HPACK_LOGGERS = ("hpack", "hpack.hpack", "hpack.table")


# --- what is looked at -----------------------------------------------------------------------------------


def _describe(value: object) -> str:
    try:
        return f"{value!r} {value!s}"
    except Exception as err:  # a repr that fails says nothing
        return f"<unprintable: {err!r}>"


def exception_texts(error: BaseException) -> Iterator[str]:
    """Everything an exception says: its text, its repr, its traceback, its args and attributes, and the
    same of every exception behind it (cause, context, group members, exceptions among its args)."""
    seen: Set[int] = set()
    pending: List[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield _describe(current)
        yield "".join(traceback.format_exception(type(current), current, current.__traceback__))
        for arg in current.args:
            yield _describe(arg)
            if isinstance(arg, BaseException):
                pending.append(arg)
        attributes = getattr(current, "__dict__", None)
        if attributes is not None:
            yield _describe(attributes)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
        pending.extend(getattr(current, "exceptions", ()))


def record_texts(record: logging.LogRecord, formatter: logging.Formatter) -> Iterator[str]:
    yield formatter.format(record)
    yield _describe(vars(record))
    if record.exc_info and record.exc_info[1] is not None:
        yield from exception_texts(record.exc_info[1])


class Collector(logging.Handler):
    """Keeps every record that reaches it, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Findings:
    """What one test saw: log records, exceptions and reprs, checked for every secret at the end."""

    collector: Collector
    errors: List[BaseException] = field(default_factory=list)
    texts: List[str] = field(default_factory=list)

    def leaks(self) -> List[str]:
        formatter = logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s")
        found: List[str] = []
        for record in list(self.collector.records):
            for text in record_texts(record, formatter):
                found += [f"log {record.name}: {text[:300]}" for secret in SECRETS if secret in text]
        for error in self.errors:
            for text in exception_texts(error):
                found += [f"error {type(error).__name__}: {text[:300]}" for secret in SECRETS if secret in text]
        for text in self.texts:
            found += [f"text: {text[:300]}" for secret in SECRETS if secret in text]
        return found

    def check(self) -> None:
        assert self.collector.records, "DEBUG logging was not on"
        assert not self.leaks(), "\n".join(self.leaks()[:10])


@pytest.fixture
def findings() -> Iterator[Findings]:
    """DEBUG on the root logger and on every existing logger; hpack's loggers as a fresh process has them."""
    logging.disable(logging.NOTSET)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name)
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    hpack_filters = {name: list(logging.getLogger(name).filters) for name in HPACK_LOGGERS}
    for name in HPACK_LOGGERS:  # a filter some earlier test's client installed must not hide a leak here
        for installed in hpack_filters[name]:
            logging.getLogger(name).removeFilter(installed)
    collector = Collector()
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(collector)
    try:
        yield Findings(collector)
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
            logger.removeHandler(collector)
        for name, installed in hpack_filters.items():
            for kept in installed:
                if kept not in logging.getLogger(name).filters:
                    logging.getLogger(name).addFilter(kept)


# --- the servers and the ways to fail ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded() -> Iterator[ReferenceServer]:
    with serve_in_thread(token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def guarded_tls(certificates: Certificates) -> Iterator[ReferenceServer]:
    with serve_in_thread(token=TOKEN, certfile=certificates.certfile, keyfile=certificates.keyfile) as running:
        yield running


@pytest.fixture(scope="module")
def nobody_listens() -> Iterator[ReferenceServer]:
    """A server started and stopped again: its URLs refuse connections."""
    with serve_in_thread() as running:
        pass
    yield running


SCENARIOS = ("accepted", "wrong token", "connection refused", "untrusted TLS")
EXPECTED_ERROR = {"wrong token": AuthenticationError, "connection refused": ConnectError, "untrusted TLS": TLSError}


@dataclass(frozen=True)
class Setting:
    url: str
    options: Dict[str, Any]
    expected: Optional[type]


@pytest.fixture
def setting(request: pytest.FixtureRequest, protocol: str, scenario: str) -> Setting:
    options: Dict[str, Any] = {
        "credential": {"Authorization": WRONG_TOKEN if scenario == "wrong token" else TOKEN},
        "headers": {"X-Api-Key": API_KEY},
        "max_retries": 0,
        "timeout": 10,
        "connect_timeout": 5,
    }
    if scenario == "untrusted TLS":
        server: ReferenceServer = request.getfixturevalue("guarded_tls")
    elif scenario == "connection refused":
        server = request.getfixturevalue("nobody_listens")
    else:
        server = request.getfixturevalue("guarded")
    return Setting(server.url(protocol), options, EXPECTED_ERROR.get(scenario))


# --- the operations --------------------------------------------------------------------------------------


def ranked() -> List[Document]:
    return [Document(text="a query", matches=DocumentList([Document(text="one"), Document(text="two")]))]


CALL_HEADERS = {"X-Call-Secret": CALL_SECRET}


async def _aencode_iter(client: AsyncClient) -> Any:
    async with client.aencode_iter(["a", "b"], batch_size=1, headers=CALL_HEADERS) as parts:
        return [part async for part in parts]


ASYNC_OPERATIONS: Dict[str, Callable[[AsyncClient], Any]] = {
    "is_ready": lambda client: client.ais_ready(timeout=5),
    "readiness": lambda client: client.readiness(timeout=5),
    "encode": lambda client: client.aencode(["a", "b"], batch_size=1, headers=CALL_HEADERS),
    "encode_collect": lambda client: client.aencode_collect(["a", "b"], headers=CALL_HEADERS),
    "encode_iter": _aencode_iter,
    "rank": lambda client: client.arank(ranked(), headers=CALL_HEADERS),
    "index": lambda client: client.aindex([Document(text="kept")], headers=CALL_HEADERS),
    "search": lambda client: client.asearch(["kept"], limit=1, headers=CALL_HEADERS),
    "profile": lambda client: client.aprofile("a", show=False),
}

SYNC_OPERATIONS: Dict[str, Callable[[Client], Any]] = {
    "is_ready": lambda client: client.is_ready(timeout=5),
    "readiness": lambda client: client.readiness(timeout=5),
    "encode": lambda client: client.encode(["a", "b"], batch_size=1, headers=CALL_HEADERS),
    "encode_collect": lambda client: client.encode_collect(["a", "b"], headers=CALL_HEADERS),
    "encode_iter": lambda client: list(client.encode_iter(["a", "b"], batch_size=1, headers=CALL_HEADERS)),
    "rank": lambda client: client.rank(ranked(), headers=CALL_HEADERS),
    "index": lambda client: client.index([Document(text="kept")], headers=CALL_HEADERS),
    "search": lambda client: client.search(["kept"], limit=1, headers=CALL_HEADERS),
    "profile": lambda client: client.profile("a", show=False),
}
#: The readiness probes come first: a fresh client's first request is where a token once reached the logs.
READINESS = ("is_ready", "readiness")


def _outcome(name: str, result: Any, setting: Setting, findings: Findings) -> None:
    findings.texts.append(_describe(result))
    if setting.expected is not None and name == "is_ready":
        assert result is False
    if setting.expected is not None and name == "readiness":
        assert result[0] is not None


def _failed(name: str, error: BaseException, setting: Setting, findings: Findings) -> None:
    findings.errors.append(error)
    if setting.expected is None or name in READINESS:
        raise error
    assert isinstance(error, setting.expected), f"{name}: {error!r}"


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_no_secret_escapes_an_async_client(setting: Setting, findings: Findings) -> None:
    loop = asyncio.get_running_loop()
    debug, slow = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = 0.0  # asyncio logs every callback it runs, with its arguments
    try:
        client = AsyncClient(setting.url, **setting.options)
        async with client:
            for name, operation in ASYNC_OPERATIONS.items():
                try:
                    result = await operation(client)
                except AclipError as error:
                    _failed(name, error, setting, findings)
                else:
                    if setting.expected is not None and name not in READINESS:
                        pytest.fail(f"{name} succeeded with {setting}")
                    _outcome(name, result, setting, findings)
            findings.texts += [repr(client), *map(repr, client._pool.options)]
            findings.texts += [repr(transport) for transport in client._pool.transports()]
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = slow
    findings.check()


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_secret_escapes_a_sync_client(setting: Setting, findings: Findings) -> None:
    with Client(setting.url, **setting.options) as client:
        for name, operation in SYNC_OPERATIONS.items():
            try:
                result = operation(client)
            except AclipError as error:
                _failed(name, error, setting, findings)
            else:
                if setting.expected is not None and name not in READINESS:
                    pytest.fail(f"{name} succeeded with {setting}")
                _outcome(name, result, setting, findings)
        findings.texts += [repr(client), repr(client._async), *map(repr, client._async._pool.options)]
        for entry in client._async._pool.loops.values():
            findings.texts += [repr(transport) for transport in entry.transports]
    findings.check()


def test_transport_options_hide_header_values() -> None:
    from aclip._transports import TransportOptions

    options = TransportOptions(headers={"authorization": TOKEN, "x-api-key": API_KEY})
    shown = repr(options) + str(options)
    assert TOKEN not in shown and API_KEY not in shown
    assert "authorization" in shown and "x-api-key" in shown  # the names still help


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("token", [TOKEN, WRONG_TOKEN], ids=["right", "wrong"])
def test_ping_keeps_the_token_out_of_everything(
    guarded: ReferenceServer,
    protocol: str,
    token: str,
    findings: Findings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CLIP_AUTH_TOKEN", token)
    status = main(["ping", guarded.url(protocol), "--timeout", "5"])
    captured = capsys.readouterr()
    assert status == (0 if token == TOKEN else 1), captured
    findings.texts += [captured.out, captured.err]
    findings.check()
