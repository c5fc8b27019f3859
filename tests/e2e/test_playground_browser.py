"""The playground in a real browser: Debian's chromium, headless, driven by playwright.

A user with the `make dev` key loads the models, generates with local/* models and sees the
images; a bad parameter shows the API's 400 with its param marked on the form; streaming answers
(SSE) show partial images, then the final one. Screenshots go to test-artifacts/ (gitignored).

chromium comes from apt (the Makefile installs it: `make test`); playwright cannot download its
own browsers here. Without chromium these tests fail: they are part of `make test`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from imagegw.entrypoints.app import create_app
from imagegw.entrypoints.runtime import Runtime
from imagegw.settings import Settings

from support.fakes import TINY_PNG, FakeClock
from support.local_gateway import DEV_KEY
from support.servers import GatewayServer

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs chromium (apt)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    settings = Settings(
        api_keys=DEV_KEY,
        playground=True,
        local_storage_dir=tmp_path_factory.mktemp("images"),
        url_signing_secret="playground-test-secret",
    )
    with GatewayServer(create_app(runtime=Runtime(settings, clock=FakeClock()))) as server:
        yield server


class Problems:
    """Console errors, uncaught exceptions and CSP violations: a clean page has none."""

    def __init__(self, page: Page) -> None:
        self.found: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.found.append(f"console {message.type}: {message.text}")


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, Problems]]:
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    problems = Problems(opened)
    yield opened, problems
    context.close()


def connect(page: Page, gateway: GatewayServer, key: str = DEV_KEY) -> None:
    response = page.goto(gateway.base_url + "/playground")
    assert response is not None
    assert response.status == 200
    page.fill("#api-key", key)
    page.click("#connect")


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"playground-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def curl_body(page: Page) -> dict[str, Any]:
    """The JSON body in the page's "copy as curl" text, read the way a shell would."""
    words = shlex.split(page.inner_text("#curl").replace("\\\n", " "))
    body: dict[str, Any] = json.loads(words[words.index("-d") + 1])
    return body


def test_a_new_user_makes_images_with_a_local_model(
    page: tuple[Page, Problems], gateway: GatewayServer
) -> None:
    tab, problems = page
    connect(tab, gateway)
    tab.wait_for_selector("#request:not([hidden])")
    options = tab.eval_on_selector_all("#model option", "nodes => nodes.map(n => n.value)")
    assert {"local/sketch", "local/canvas", "local/classic"} <= set(options)

    tab.select_option("#model", "local/sketch")
    # The form follows the model's capabilities.
    sizes = tab.eval_on_selector_all("#param-size option", "nodes => nodes.map(n => n.value)")
    assert sizes == ["", "auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536"]
    assert tab.get_attribute("#param-n", "max") == "10"
    assert tab.locator("#param-style").count() == 0  # local/sketch takes no style
    tab.fill("#prompt", "a lighthouse at dusk")
    tab.select_option("#param-size", "256x256")
    tab.fill("#param-n", "2")
    tab.select_option("#param-background", "transparent")

    with tab.expect_request("**/v1/images/generations") as sent:
        tab.click("#generate")
    tab.wait_for_function(
        "() => [...document.querySelectorAll('#images img')]"
        ".filter(i => i.complete && i.naturalWidth === 256).length === 2"
    )
    expected = {
        "model": "local/sketch",
        "prompt": "a lighthouse at dusk",
        "size": "256x256",
        "n": 2,
        "background": "transparent",
    }
    assert json.loads(sent.value.post_data or "") == expected
    assert sent.value.headers["authorization"] == f"Bearer {DEV_KEY}"
    assert curl_body(tab) == expected  # "copy as curl" is the exact request
    curl = tab.inner_text("#curl")
    assert "$IMAGEGW_API_KEY" in curl
    assert gateway.base_url + "/v1/images/generations" in curl
    python = tab.inner_text("#python")
    assert 'model="local/sketch",' in python
    assert "n=2," in python
    assert DEV_KEY not in curl + python  # the key is never put in the copied code

    resolved = tab.inner_text("#resolved")
    assert re.search(r"request id\s+req_[0-9a-f]{32}", resolved)
    assert re.search(r"size\s+256x256", resolved)
    assert re.search(r"background\s+transparent", resolved)
    assert re.search(r"model\s+local/sketch", resolved)
    assert re.search(r"cost\s+USD 0\.0000", resolved)  # local/* models are free
    assert tab.is_hidden("#error")

    # The key stayed in the page's memory: not in the URL, a cookie or storage.
    assert DEV_KEY not in tab.url
    assert tab.context.cookies() == []
    assert tab.evaluate("localStorage.length + sessionStorage.length") == 0
    screenshot(tab, "images")

    # Another model changes the form: local/classic has styles and n = 1.
    tab.select_option("#model", "local/classic")
    assert tab.get_attribute("#param-n", "max") == "1"
    styles = tab.eval_on_selector_all("#param-style option", "nodes => nodes.map(n => n.value)")
    assert styles == ["", "vivid", "natural"]
    assert problems.found == []


def test_a_bad_parameter_shows_the_api_error_with_its_param(
    page: tuple[Page, Problems], gateway: GatewayServer
) -> None:
    tab, problems = page
    connect(tab, gateway)
    tab.wait_for_selector("#request:not([hidden])")
    tab.select_option("#model", "local/canvas")
    tab.fill("#prompt", "a kite")
    tab.fill("#param-custom_size", "1000x7")  # not a multiple of 16
    with tab.expect_response("**/v1/images/generations") as answered:
        tab.click("#generate")
    assert answered.value.status == 400
    body = answered.value.json()["error"]
    tab.wait_for_selector("#error:not([hidden])")
    shown = tab.inner_text("#error")
    assert shown.startswith("400 · " + body["message"])
    assert re.search(r"param\s+size", shown)
    assert re.search(r"code\s+invalid_value", shown)
    assert re.search(r"request id\s+req_", shown)
    # The field the error names is marked on the form.
    assert tab.eval_on_selector_all(
        ".field.invalid", "nodes => nodes.map(n => n.dataset.param)"
    ) == ["size", "size"]
    assert tab.get_attribute("#param-custom_size", "aria-invalid") == "true"
    assert tab.locator("#images img").count() == 0
    screenshot(tab, "error-400")
    # Console errors are the browser's own report of the 400 fetch; nothing else.
    assert all("400 (Bad Request)" in problem for problem in problems.found), problems.found


def test_a_wrong_key_is_reported_when_loading_models(
    page: tuple[Page, Problems], gateway: GatewayServer
) -> None:
    tab, _ = page
    connect(tab, gateway, key="sk-not-a-key")
    tab.wait_for_function("() => document.getElementById('setup-status').textContent.length > 0")
    tab.wait_for_function(
        "() => !/Loading/.test(document.getElementById('setup-status').textContent)"
    )
    assert tab.inner_text("#setup-status").startswith("401: ")
    assert tab.is_hidden("#request")


def test_a_real_stream_shows_partial_images_then_the_final_one(
    page: tuple[Page, Problems], gateway: GatewayServer
) -> None:
    """local/* models stream real partial images (coarse to fine) under uvicorn."""
    tab, problems = page
    connect(tab, gateway)
    tab.wait_for_selector("#request:not([hidden])")
    tab.select_option("#model", "local/sketch")
    tab.fill("#prompt", "a comet over the sea")
    tab.select_option("#param-size", "256x256")
    tab.check("#param-stream")
    tab.select_option("#param-partial_images", "2")
    with tab.expect_response("**/v1/images/generations") as answered:
        tab.click("#generate")
    assert answered.value.headers["content-type"].startswith("text/event-stream")
    tab.wait_for_function(
        "() => [...document.querySelectorAll('#images figure[data-final] img')]"
        ".some(i => i.complete && i.naturalWidth === 256)"
    )
    # Each partial was put up in turn (however the events were chunked on the way), then
    # replaced by the final image.
    assert tab.get_attribute("#images figure img", "alt") == "image 1 (after 2 partial images)"
    assert tab.locator("#images figure").count() == 1
    resolved = tab.inner_text("#resolved")
    assert re.search(r"request id\s+req_[0-9a-f]{32}", resolved)
    assert re.search(r"size\s+256x256", resolved)
    assert re.search(r"model\s+local/sketch", resolved)
    assert curl_body(tab)["stream"] is True
    assert problems.found == []


STREAMING_MODEL = {
    "id": "local/streamer",
    "object": "model",
    "created": 1,
    "owned_by": "local",
    "status": "active",
    "capabilities": {
        "description": "a model that streams",
        "n": {"min": 1, "max": 1},
        "sizes": ["1024x1024"],
        "qualities": [],
        "styles": [],
        "backgrounds": [],
        "output_formats": ["png"],
        "parameters": ["size", "stream", "partial_images"],
        "response_formats": ["b64_json", "url"],
    },
}


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\r\ndata: {json.dumps(data)}\r\n\r\n"


def test_a_streamed_answer_shows_partial_images_then_the_final_one(
    page: tuple[Page, Problems], gateway: GatewayServer
) -> None:
    """The stream format is OpenAI's (image_generation.partial_image / .completed). The API
    answers are played by the browser's router here, so the page is checked against the
    protocol itself, whichever models of the gateway stream."""
    tab, problems = page
    image = base64.b64encode(TINY_PNG).decode()
    posted: list[dict[str, Any]] = []

    def models(route: Route) -> None:
        route.fulfill(json={"object": "list", "data": [STREAMING_MODEL]})

    def generations(route: Route) -> None:
        posted.append(json.loads(route.request.post_data or "{}"))
        common = {"created_at": 1, "size": "1024x1024", "quality": "high", "output_format": "png"}
        events = [
            sse(
                "image_generation.partial_image",
                {
                    "type": "image_generation.partial_image",
                    "b64_json": image,
                    "partial_image_index": 0,
                    **common,
                },
            ),
            sse(
                "image_generation.partial_image",
                {
                    "type": "image_generation.partial_image",
                    "b64_json": image,
                    "partial_image_index": 1,
                    **common,
                },
            ),
            sse(
                "image_generation.completed",
                {
                    "type": "image_generation.completed",
                    "b64_json": image,
                    **common,
                    "usage": {"total_tokens": 7, "input_tokens": 3, "output_tokens": 4},
                },
            ),
        ]
        route.fulfill(
            status=200,
            headers={"content-type": "text/event-stream", "x-request-id": "req_stream"},
            body="".join(events),
        )

    tab.route("**/v1/models", models)
    tab.route("**/v1/images/generations", generations)
    connect(tab, gateway)
    tab.wait_for_selector("#param-stream")
    tab.check("#param-stream")
    tab.select_option("#param-partial_images", "2")
    tab.fill("#prompt", "a comet")
    tab.click("#generate")
    tab.wait_for_selector("#images figure[data-final] img")
    assert posted == [
        {"model": "local/streamer", "prompt": "a comet", "stream": True, "partial_images": 2}
    ]
    assert tab.locator("#images figure").count() == 1  # partials replaced by the final image
    assert tab.get_attribute("#images figure img", "alt") == "image 1 (after 2 partial images)"
    resolved = tab.inner_text("#resolved")
    assert "req_stream" in resolved
    assert '"output_tokens":4' in resolved
    assert tab.inner_text("#curl").startswith("curl -sN ")
    assert "for event in stream:" in tab.inner_text("#python")
    assert problems.found == []


def test_cost_and_the_gateways_headers_are_shown_when_the_answer_has_them(
    page: tuple[Page, Problems], gateway: GatewayServer
) -> None:
    """`cost` (with its x-imagegw-cost-usd header) and the x-imagegw-* headers, as a gateway
    with prices answers: played by the browser's router, like the stream above."""
    tab, problems = page
    image = base64.b64encode(TINY_PNG).decode()

    def generations(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={
                "content-type": "application/json",
                "x-request-id": "req_priced",
                "x-imagegw-cost-usd": "0.0420",
                "x-imagegw-ignored-params": "style",
            },
            body=json.dumps(
                {
                    "created": 1,
                    "model": "local/sketch",
                    "data": [{"b64_json": image, "revised_prompt": "a kite, at noon"}],
                    "cost": {"amount": 0.042, "currency": "USD", "estimated": True},
                }
            ),
        )

    tab.route("**/v1/images/generations", generations)
    connect(tab, gateway)
    tab.wait_for_selector("#request:not([hidden])")
    tab.select_option("#model", "local/sketch")
    tab.fill("#prompt", "a kite")
    tab.click("#generate")
    tab.wait_for_selector("#images figure img")
    resolved = tab.inner_text("#resolved")
    assert re.search(r"cost\s+USD 0\.0420 \(estimated\)", resolved)
    assert re.search(r"x-imagegw-ignored-params\s+style", resolved)
    assert "req_priced" in resolved
    assert "revised prompt: a kite, at noon" in tab.inner_text("#images")
    assert problems.found == []
