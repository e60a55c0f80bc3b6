"""Auth and TLS on every protocol: tokens accepted and refused, certificates verified, mutual TLS."""

from __future__ import annotations

import logging
import ssl
from typing import Iterator

import numpy as np
import pytest
import trustme

from aclip import AsyncClient, AuthenticationError, Client, TLSError, TransportError
from aclip.testing import ReferenceServer, serve_in_thread
from tests.conftest import PROTOCOLS, Certificates
from tests.helpers import expected_text

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
def guarded() -> Iterator[ReferenceServer]:
    with serve_in_thread(token=TOKEN) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_right_token_is_accepted(guarded: ReferenceServer, protocol: str) -> None:
    async with AsyncClient(guarded.url(protocol), credential={"Authorization": TOKEN}) as client:
        vectors = await client.aencode(["let me in"])
    np.testing.assert_array_equal(vectors[0], expected_text("let me in"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_token_from_the_environment(
    guarded: ReferenceServer, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIP_AUTH_TOKEN", TOKEN)
    async with AsyncClient(guarded.url(protocol)) as client:
        vectors = await client.aencode(["by environment"])
    np.testing.assert_array_equal(vectors[0], expected_text("by environment"))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("credential", [None, {"Authorization": "wrong-token"}], ids=["missing", "wrong"])
async def test_missing_or_wrong_token_is_an_authentication_error(
    guarded: ReferenceServer, protocol: str, credential: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLIP_AUTH_TOKEN", raising=False)
    rejected_before = guarded.stats.calls_rejected
    async with AsyncClient(guarded.url(protocol), credential=credential) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.aencode(["no entry"])
    assert guarded.stats.calls_rejected > rejected_before
    message = str(caught.value)
    assert TOKEN not in message and "wrong-token" not in message


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_untrusted_certificate_is_a_tls_error(tls_server: ReferenceServer, protocol: str) -> None:
    other_ca = trustme.CA()  # the server's certificate is not signed by this one
    context = ssl.create_default_context()
    other_ca.configure_trust(context)
    for options in ({}, {"ssl_context": context}):  # the system's CAs, then a CA of our own
        async with AsyncClient(tls_server.url(protocol), connect_timeout=5, **options) as client:  # type: ignore[arg-type]
            with pytest.raises(TLSError, match="TLS"):
                await client.aencode(["should not get through"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_ssl_context_of_our_own(tls_server: ReferenceServer, certificates: Certificates, protocol: str) -> None:
    context = ssl.create_default_context()
    certificates.ca.configure_trust(context)
    async with AsyncClient(tls_server.url(protocol), ssl_context=context) as client:
        vectors = await client.aencode(["trusted"])
    np.testing.assert_array_equal(vectors[0], expected_text("trusted"))


@pytest.fixture(scope="module")
def mutual_tls_server(certificates: Certificates) -> Iterator[ReferenceServer]:
    with serve_in_thread(
        certfile=certificates.certfile, keyfile=certificates.keyfile, client_ca_file=certificates.ca_file
    ) as running:
        yield running


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_mutual_tls(
    mutual_tls_server: ReferenceServer,
    certificates: Certificates,
    tmp_path_factory: pytest.TempPathFactory,
    protocol: str,
) -> None:
    folder = tmp_path_factory.mktemp("client-cert")
    client_cert = certificates.ca.issue_cert("aclip-test-client")
    cert_file, key_file = folder / "client.pem", folder / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert.private_key_pem.write_to_path(str(key_file))
    url = mutual_tls_server.url(protocol)
    async with AsyncClient(
        url, ca_file=certificates.ca_file, client_cert=str(cert_file), client_key=str(key_file)
    ) as client:
        vectors = await client.aencode(["with a client certificate"])
    np.testing.assert_array_equal(vectors[0], expected_text("with a client certificate"))
    async with AsyncClient(url, ca_file=certificates.ca_file, connect_timeout=5) as client:
        # Under TLS 1.3 the server refuses a missing client certificate after the client's side of the
        # handshake is done, so the client may see the alert (TLSError) or just the connection going away.
        with pytest.raises(TransportError):
            await client.aencode(["without one"])


def test_tls_options_need_a_tls_scheme() -> None:
    with pytest.raises(ValueError, match="not a TLS scheme"):
        Client("grpc://127.0.0.1:1", ca_file="/nonexistent/ca.pem")


def test_unreadable_ca_file_is_named() -> None:
    with pytest.raises(ValueError, match=r"ca_file='/nonexistent/ca\.pem'"):
        Client("grpcs://127.0.0.1:1", ca_file="/nonexistent/ca.pem")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_token_never_reaches_the_logs(
    guarded: ReferenceServer, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with AsyncClient(guarded.url(protocol), credential={"Authorization": TOKEN}) as client:
            await client.aencode(["quietly"])
            assert TOKEN not in repr(client)
    assert any(record.name == "aclip" for record in caplog.records)  # DEBUG logging was really on
    assert TOKEN not in caplog.text
