"""``fastpath/fastapi_routes.py``: FastAPI's pydantic.v1 test, answered without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import fastapi
import pytest
from fastapi._compat import shared

from imagegw.fastpath import fastapi_routes

# A fresh interpreter: declare a route with parameters as the gateway's route modules do, with
# or without the replacement, and say whether pydantic.v1 was imported by it.
PROBE = r"""
import json, sys
import fastapi
if sys.argv[1] == "installed":
    from imagegw.fastpath import fastapi_routes
    assert fastapi_routes.install()
router = fastapi.APIRouter()

@router.get("/v1/images/jobs/{job_id}")
async def job(job_id: str, wait: int | None = None) -> None:
    return None

print(json.dumps({"pydantic.v1": "pydantic.v1" in sys.modules, "routes": len(router.routes)}))
"""


def declare_route(mode: str) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def test_declaring_routes_does_not_import_pydantic_v1_once_installed() -> None:
    assert declare_route("stock") == {"pydantic.v1": True, "routes": 1}
    assert declare_route("installed") == {"pydantic.v1": False, "routes": 1}


def test_a_pydantic_v1_model_is_still_refused() -> None:
    assert fastapi_routes.install()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pydantic import v1

    class Legacy(v1.BaseModel):
        name: str

    async def legacy(body: Legacy) -> None:
        return None

    # The class itself, not the name this module's postponed annotations would leave.
    legacy.__annotations__ = {"body": Legacy, "return": None}
    with pytest.raises(fastapi.exceptions.PydanticV1NotSupportedError):
        fastapi.APIRouter().add_api_route("/legacy", legacy, methods=["POST"])


def test_another_fastapi_version_keeps_fastapis_own_test(monkeypatch: pytest.MonkeyPatch) -> None:
    original = shared.is_pydantic_v1_model_class
    monkeypatch.setattr(shared, "is_pydantic_v1_model_class", original)
    monkeypatch.setattr(fastapi, "__version__", "0.164.0")
    assert not fastapi_routes.install()
    assert shared.is_pydantic_v1_model_class is original
