"""Liveness: unauthenticated, touches nothing but the process."""

from __future__ import annotations

from fastapi import APIRouter

from imagegw import __version__

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness check (no authentication)")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
