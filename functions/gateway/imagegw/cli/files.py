"""Images and their metadata on disk: written whole or not at all.

Every file is written under a temporary name and renamed into place, and a request's metadata
JSON is written after its images: a metadata file is the mark that the request is done, which
is what a re-run of a batch checks to skip it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagegw.cli.client import ImagesClient

# What the bytes say they are; the answer's output_format when they say nothing known.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpg"),
    (b"WEBP", 8, "webp"),
    (b"GIF8", 0, "gif"),
)
_FORMAT_EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "gif": "gif"}
_UNSAFE = re.compile(r"[^a-z0-9]+")


def extension_for(data: bytes, output_format: object = None) -> str:
    for signature, offset, extension in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return extension
    return _FORMAT_EXTENSIONS.get(str(output_format).lower(), "bin")


def slug(text: str, *, limit: int = 40) -> str:
    """A file-name-safe summary of a prompt."""
    return _UNSAFE.sub("-", text.lower()).strip("-")[:limit].strip("-") or "image"


def write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_json(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    write_atomically(path, text.encode("utf-8"))


class InvalidImage(ValueError):
    pass


async def image_bytes(item: dict[str, Any], client: ImagesClient) -> bytes:
    """One entry of an answer's ``data``: inline base64, or a link to download."""
    encoded = item.get("b64_json")
    if isinstance(encoded, str):
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidImage("an image in the answer is not valid base64") from exc
    url = item.get("url")
    if isinstance(url, str):
        return await client.download(url)
    raise InvalidImage("an image in the answer has neither b64_json nor url")


def metadata(
    *,
    request: dict[str, Any],
    answer: dict[str, Any],
    files: list[str],
    request_id: str | None,
    job_id: str | None = None,
) -> dict[str, Any]:
    """What is worth keeping beside the images: the request, what the server resolved it to
    (model, size, quality, ...), usage and cost, revised prompts. Never the image bytes."""
    data = answer.get("data") if isinstance(answer.get("data"), list) else []
    images = []
    for name, item in zip(files, data or [], strict=False):
        entry: dict[str, Any] = {"file": name}
        # Not the link itself: it expires, and its signature is a credential.
        if isinstance(item, dict) and item.get("revised_prompt") is not None:
            entry["revised_prompt"] = item["revised_prompt"]
        images.append(entry)
    resolved = {key: value for key, value in answer.items() if key != "data"}
    document: dict[str, Any] = {
        "request": request,
        "response": resolved,
        "images": images,
        "request_id": request_id,
    }
    if job_id is not None:
        document["job_id"] = job_id
    return document


def cost_of(answer: dict[str, Any]) -> float | None:
    """The answer's ``cost.amount`` in USD when the server reports one."""
    cost = answer.get("cost")
    if isinstance(cost, dict):
        amount = cost.get("amount")
        if isinstance(amount, int | float) and not isinstance(amount, bool):
            return float(amount)
    return None


async def save_answer(
    answer: dict[str, Any],
    client: ImagesClient,
    directory: Path,
    stem: str,
    *,
    on_image: Callable[[], object] | None = None,
) -> list[str]:
    """Write each image of an answer as ``<stem>-<i>.<ext>``; return the file names."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    data = answer.get("data")
    names: list[str] = []
    for index, item in enumerate(data if isinstance(data, list) else [], start=1):
        if not isinstance(item, dict):
            raise InvalidImage("an image in the answer is not an object")
        content = await image_bytes(item, client)
        name = f"{stem}-{index}.{extension_for(content, answer.get('output_format'))}"
        await asyncio.to_thread(write_atomically, directory / name, content)
        names.append(name)
        if on_image is not None:
            on_image()
    return names
