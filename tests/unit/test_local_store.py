"""Local image storage: signed, expiring links that cannot be forged, stretched or escaped."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from imagegw.errors import NotFound, PermissionDenied
from imagegw.storage import is_valid_key, new_key
from imagegw.storage.local import FILES_PATH, LocalImageStore

from support.fakes import TINY_PNG, FakeClock

TTL = 3600
BASE = "http://gateway.test:8000/"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> LocalImageStore:
    return LocalImageStore(
        tmp_path / "images", signing_secret=b"unit-test-secret", ttl_seconds=TTL, clock=clock
    )


def _parts(url: str) -> tuple[str, str, str]:
    """(key, expires, signature) of a link."""
    split = urlsplit(url)
    query = parse_qs(split.query)
    assert split.path.startswith(FILES_PATH + "/")
    return split.path.rsplit("/", 1)[1], query["expires"][0], query["signature"][0]


async def _stored(store: LocalImageStore, extension: str = "png") -> tuple[str, str, str]:
    key = new_key(extension)
    await store.put(key, TINY_PNG, f"image/{extension}")
    return _parts((await store.link(key, base_url=BASE)).url)


def test_new_keys_are_random_and_valid() -> None:
    keys = {new_key("png") for _ in range(50)}
    assert len(keys) == 50
    assert all(is_valid_key(key) and key.endswith(".png") for key in keys)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("extension", "content_type"),
    [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")],
)
async def test_put_then_open_returns_the_bytes_and_content_type(
    store: LocalImageStore, extension: str, content_type: str
) -> None:
    key, expires, signature = await _stored(store, extension)
    assert store.open(key, expires=expires, signature=signature) == (TINY_PNG, content_type)


@pytest.mark.anyio
async def test_link_points_at_the_gateway_and_expires_after_the_ttl(
    store: LocalImageStore, clock: FakeClock
) -> None:
    key = new_key("png")
    await store.put(key, TINY_PNG, "image/png")
    link = await store.link(key, base_url=BASE)
    assert link.url.startswith(f"http://gateway.test:8000{FILES_PATH}/{key}?")
    assert link.expires_at == int(clock.now) + TTL
    assert _parts(link.url)[1] == str(link.expires_at)


@pytest.mark.anyio
async def test_files_do_not_leak_between_keys(store: LocalImageStore, tmp_path: Path) -> None:
    first, second = new_key("png"), new_key("png")
    await store.put(first, b"first", "image/png")
    await store.put(second, b"second", "image/png")
    for key, data in ((first, b"first"), (second, b"second")):
        _, expires, signature = _parts((await store.link(key, base_url=BASE)).url)
        assert store.open(key, expires=expires, signature=signature)[0] == data
    # Only the two images: no partial files left behind.
    assert sorted(path.name for path in (tmp_path / "images").iterdir()) == sorted([first, second])


@pytest.mark.anyio
async def test_tampered_signature_is_refused(store: LocalImageStore) -> None:
    key, expires, signature = await _stored(store)
    forged = ("0" if signature[0] != "0" else "1") + signature[1:]
    with pytest.raises(PermissionDenied) as caught:
        store.open(key, expires=expires, signature=forged)
    assert caught.value.status == 403


@pytest.mark.anyio
async def test_tampered_expiry_is_refused(store: LocalImageStore) -> None:
    key, expires, signature = await _stored(store)
    with pytest.raises(PermissionDenied):
        store.open(key, expires=str(int(expires) + 86400), signature=signature)


@pytest.mark.anyio
async def test_signature_of_one_key_does_not_open_another(store: LocalImageStore) -> None:
    _, expires, signature = await _stored(store)
    other, _, _ = await _stored(store)
    with pytest.raises(PermissionDenied):
        store.open(other, expires=expires, signature=signature)


@pytest.mark.anyio
async def test_link_signed_with_another_secret_is_refused(
    store: LocalImageStore, tmp_path: Path, clock: FakeClock
) -> None:
    key, _, _ = await _stored(store)
    other = LocalImageStore(
        tmp_path / "images", signing_secret=b"another-secret", ttl_seconds=TTL, clock=clock
    )
    _, expires, signature = _parts((await other.link(key, base_url=BASE)).url)
    with pytest.raises(PermissionDenied):
        store.open(key, expires=expires, signature=signature)


@pytest.mark.anyio
async def test_link_works_until_it_expires(store: LocalImageStore, clock: FakeClock) -> None:
    key, expires, signature = await _stored(store)
    clock.now = int(expires) - 1
    assert store.open(key, expires=expires, signature=signature)[0] == TINY_PNG
    clock.now = int(expires)
    with pytest.raises(PermissionDenied) as caught:
        store.open(key, expires=expires, signature=signature)
    assert caught.value.code == "link_expired"
    clock.now = int(expires) + 10 * TTL
    with pytest.raises(PermissionDenied):
        store.open(key, expires=expires, signature=signature)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("expires", "signature"),
    [
        (None, "sig"),
        ("1", None),
        (None, None),
        ("", "sig"),
        ("1", ""),
    ],
)
async def test_incomplete_link_is_refused(
    store: LocalImageStore, expires: str | None, signature: str | None
) -> None:
    key, real_expires, real_signature = await _stored(store)
    with pytest.raises(PermissionDenied) as caught:
        store.open(
            key,
            expires=real_expires if expires == "1" else expires,
            signature=real_signature if signature == "sig" else signature,
        )
    assert caught.value.status == 403


@pytest.mark.anyio
@pytest.mark.parametrize(
    "expires",
    [
        "soon",
        "-5",
        "1.5",
        "1e9",
        " 123",
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\u0661\u0662\u0663", id="arabic-indic-digits"),
    ],
)
async def test_expiry_that_is_not_a_plain_number_is_refused(
    store: LocalImageStore, expires: str
) -> None:
    # Whatever arrives in the query string must be refused, never crash the request (a 500).
    key, _, signature = await _stored(store)
    with pytest.raises(PermissionDenied):
        store.open(key, expires=expires, signature=signature)


@pytest.mark.parametrize(
    "key",
    [
        "../x.png",
        "..%2fx.png",
        "%2e%2e",
        "..",
        "a.png",
        "",
        "/etc/passwd",
        "0123456789abcdef0123456789abcdef.gif",
        "0123456789ABCDEF0123456789ABCDEF.png",
        "0123456789abcdef0123456789abcdef.png/../x",
        ".0123456789abcdef0123456789abcdef.png.partial",
    ],
)
def test_keys_that_are_not_store_keys_are_not_found(store: LocalImageStore, key: str) -> None:
    with pytest.raises(NotFound) as caught:
        store.open(key, expires="9999999999", signature="0" * 64)
    assert caught.value.status == 404


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["../x.png", "a.png", "../../etc/cron.d/x"])
async def test_put_refuses_keys_it_did_not_generate(store: LocalImageStore, key: str) -> None:
    with pytest.raises(ValueError, match="new_key"):
        await store.put(key, TINY_PNG, "image/png")


@pytest.mark.anyio
async def test_genuine_link_to_an_image_that_is_gone_is_not_found(store: LocalImageStore) -> None:
    key = new_key("png")
    _, expires, signature = _parts((await store.link(key, base_url=BASE)).url)
    with pytest.raises(NotFound) as caught:
        store.open(key, expires=expires, signature=signature)
    assert caught.value.code == "image_not_found"
