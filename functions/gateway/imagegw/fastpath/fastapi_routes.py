"""FastAPI's test for pydantic.v1 models, without importing pydantic.v1 to answer "no".

FastAPI 0.163 refuses pydantic.v1 models. To find one, every route parameter it analyses (when
the route modules declare their routes, so during every cold start) goes through
``is_pydantic_v1_model_class``, which imports ``pydantic.v1`` to test ``issubclass(annotation,
pydantic.v1.BaseModel)``: about 27 ms of a cold start, for a package the gateway never uses
(bench/RESULTS.md, round 7).

A class can only be a pydantic.v1 model if ``pydantic.v1`` was imported to define it. So while
``pydantic.v1`` is not in ``sys.modules`` the answer is "no" without importing it; once it is,
FastAPI's own test answers. Installed before the routes are declared (``api/routes/__init__``),
only with the FastAPI version it was written for; with any other FastAPI's own test stays.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

WRITTEN_FOR = "0.163.2"


def install() -> bool:
    """Replace ``fastapi._compat.shared.is_pydantic_v1_model_class`` (once); False, and nothing
    changed, with a FastAPI other than ``WRITTEN_FOR``."""
    import fastapi
    from fastapi._compat import shared

    if fastapi.__version__ != WRITTEN_FOR:
        return False
    if not getattr(shared.is_pydantic_v1_model_class, "imagegw_installed", False):
        shared.is_pydantic_v1_model_class = _answering_without_import(  # type: ignore[assignment]
            shared.is_pydantic_v1_model_class
        )
    return True


def _answering_without_import(fastapis: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def is_pydantic_v1_model_class(cls: Any) -> bool:
        if "pydantic.v1" not in sys.modules:
            return False  # no pydantic.v1 model can exist yet
        return fastapis(cls)

    is_pydantic_v1_model_class.imagegw_installed = True  # type: ignore[attr-defined]
    return is_pydantic_v1_model_class
