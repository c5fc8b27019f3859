"""The packaged model catalog, name resolution, lifecycle dates and the free WxH size rule."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from imagegw import catalog as catalog_module
from imagegw.catalog import (
    Catalog,
    CatalogError,
    FreeSizeRule,
    load_catalog,
    parse_catalog,
)
from imagegw.entrypoints.runtime import Runtime
from imagegw.errors import ModelNotFound, ModelRetired, ModelUnavailable
from imagegw.settings import Settings

BEFORE_DALLE_SHUTDOWN = dt.date(2026, 1, 15)
NOW = dt.date(2026, 11, 22)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _model(model_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": model_id,
        "provider": model_id.split("/", 1)[0],
        "upstream_model": model_id.split("/", 1)[1],
        "sizes": ["1024x1024"],
        "parameters": ["size"],
        **fields,
    }


# ---------------------------------------------------------------- the packaged file


@pytest.mark.parametrize(
    "model_id",
    [
        "openai/gpt-image-1.5",
        "openai/gpt-image-1",
        "openai/dall-e-3",
        "openai/dall-e-2",
        "google/imagen-4.0",
        "openai/gpt-image-1-mini",
        "openai/gpt-image-2",
        "openai/gpt-image-2.5-flare",
        "openai/gpt-image-2.5-sunburst",
        "local/sketch",
        "local/canvas",
        "local/classic",
    ],
)
def test_packaged_catalog_holds_the_required_model(catalog: Catalog, model_id: str) -> None:
    spec = catalog.get(model_id)
    assert spec is not None
    assert spec.id == model_id


@pytest.mark.parametrize(
    ("model_id", "n_max", "prompt_max"),
    [
        ("openai/dall-e-2", 10, 1000),
        ("openai/dall-e-3", 1, 4000),
        ("openai/gpt-image-1.5", 10, 32000),
        ("openai/gpt-image-2", 10, 32000),
        ("google/imagen-4.0", 4, 32000),
    ],
)
def test_packaged_limits_match_the_providers(
    catalog: Catalog, model_id: str, n_max: int, prompt_max: int
) -> None:
    spec = catalog.get(model_id)
    assert spec is not None
    assert (spec.n_max, spec.prompt_max_chars) == (n_max, prompt_max)


def test_every_local_model_is_served_by_the_local_provider_without_a_shutdown(
    catalog: Catalog,
) -> None:
    local = [spec for spec in catalog if spec.id.startswith("local/")]
    assert {spec.id for spec in local} >= {"local/sketch", "local/canvas", "local/classic"}
    for spec in local:
        assert spec.provider == "local"
        assert spec.shutdown_date is None
        assert spec.description


# ---------------------------------------------------------------- resolution


def test_bare_openai_id_resolves_to_the_openai_model(catalog: Catalog) -> None:
    resolution = catalog.resolve("dall-e-3", BEFORE_DALLE_SHUTDOWN)
    assert resolution.spec.id == "openai/dall-e-3"
    assert resolution.upstream_model == "dall-e-3"
    assert resolution.requested == "dall-e-3"
    assert resolution.redirected_from is None


@pytest.mark.parametrize("requested", ["gpt-image-2-2026-04-21", "openai/gpt-image-2-2026-04-21"])
def test_snapshot_resolves_to_its_model_and_stays_pinned_upstream(
    catalog: Catalog, requested: str
) -> None:
    resolution = catalog.resolve(requested, NOW)
    assert resolution.spec.id == "openai/gpt-image-2"
    assert resolution.upstream_model == "gpt-image-2-2026-04-21"


def test_plain_model_is_sent_upstream_under_its_upstream_id(catalog: Catalog) -> None:
    resolution = catalog.resolve("openai/gpt-image-2", NOW)
    assert resolution.upstream_model == "gpt-image-2"


@pytest.mark.parametrize("requested", ["nope", "openai/nope", "local/nope", "google/dall-e-3"])
def test_unknown_model_raises_model_not_found(catalog: Catalog, requested: str) -> None:
    with pytest.raises(ModelNotFound) as caught:
        catalog.resolve(requested, NOW)
    assert caught.value.status == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert requested in caught.value.message


def test_retired_model_names_its_shutdown_date_and_replacement(catalog: Catalog) -> None:
    with pytest.raises(ModelRetired) as caught:
        catalog.resolve("dall-e-3", NOW)
    error = caught.value
    assert error.status == 404
    assert error.code == "model_retired"
    assert error.param == "model"
    assert "2026-05-12" in error.message
    assert "openai/gpt-image-2.5-sunburst" in error.message


def test_model_is_served_on_the_day_before_shutdown_and_refused_on_the_day(
    catalog: Catalog,
) -> None:
    served = catalog.resolve("openai/gpt-image-1.5", dt.date(2026, 11, 30))
    assert served.spec.id == "openai/gpt-image-1.5"
    with pytest.raises(ModelRetired) as caught:
        catalog.resolve("openai/gpt-image-1.5", dt.date(2026, 12, 1))
    assert "2026-12-01" in caught.value.message


def _redirect_catalog(**old: Any) -> Catalog:
    return parse_catalog(
        {
            "models": [
                _model(
                    "test/old",
                    shutdown_date=dt.date(2026, 6, 1),
                    replacement="test/new",
                    redirect=True,
                    **old,
                ),
                _model("test/new"),
            ]
        }
    )


def test_redirect_serves_the_replacement_after_shutdown() -> None:
    resolution = _redirect_catalog().resolve("test/old", dt.date(2026, 6, 1))
    assert resolution.spec.id == "test/new"
    assert resolution.upstream_model == "new"
    assert resolution.redirected_from is not None
    assert resolution.redirected_from.id == "test/old"


def test_redirecting_model_is_served_itself_before_shutdown() -> None:
    resolution = _redirect_catalog().resolve("test/old", dt.date(2026, 5, 31))
    assert resolution.spec.id == "test/old"
    assert resolution.redirected_from is None


def test_redirect_to_a_retired_replacement_is_a_retirement() -> None:
    catalog = parse_catalog(
        {
            "models": [
                _model(
                    "test/old",
                    shutdown_date=dt.date(2026, 6, 1),
                    replacement="test/new",
                    redirect=True,
                ),
                _model("test/new", shutdown_date=dt.date(2026, 7, 1)),
            ]
        }
    )
    with pytest.raises(ModelRetired):
        catalog.resolve("test/old", dt.date(2026, 8, 1))


def test_profiles_are_merged_and_entries_override_them() -> None:
    catalog = parse_catalog(
        {
            "profiles": {"base": {"n_max": 7, "sizes": ["512x512"], "parameters": ["size"]}},
            "models": [
                {"id": "p/a", "provider": "p", "upstream_model": "a", "profile": "base"},
                {
                    "id": "p/b",
                    "provider": "p",
                    "upstream_model": "b",
                    "profile": "base",
                    "n_max": 2,
                },
            ],
        }
    )
    a, b = catalog.get("p/a"), catalog.get("p/b")
    assert a is not None
    assert b is not None
    assert (a.n_max, a.sizes) == (7, ("512x512",))
    assert (b.n_max, b.sizes) == (2, ("512x512",))


def test_alias_resolves_to_its_model() -> None:
    catalog = parse_catalog({"models": [_model("test/a", aliases=["test/a-latest"])]})
    resolution = catalog.resolve("test/a-latest", NOW)
    assert resolution.spec.id == "test/a"
    assert resolution.upstream_model == "a"


# ---------------------------------------------------------------- invalid catalogs


@pytest.mark.parametrize(
    ("document", "mentions"),
    [
        pytest.param({"models": [_model("test/a"), _model("test/a")]}, "test/a", id="duplicate-id"),
        pytest.param(
            {"models": [{**_model("test/a"), "profile": "missing"}]},
            "missing",
            id="unknown-profile",
        ),
        pytest.param(
            {"models": [_model("test/a", aliases=["x/y"]), _model("test/b", aliases=["x/y"])]},
            "x/y",
            id="alias-claimed-twice",
        ),
        pytest.param(
            {"models": [_model("test/a"), _model("test/b", aliases=["test/a"])]},
            "test/a",
            id="alias-is-another-model-id",
        ),
        pytest.param(
            {
                "models": [
                    _model(
                        "test/a",
                        shutdown_date="2026-01-01",
                        replacement="test/missing",
                        redirect=True,
                    )
                ]
            },
            "test/missing",
            id="redirect-to-missing-model",
        ),
        pytest.param(
            {"models": [_model("test/a", ignored_parameters=["quality"])]},
            "ignored_parameters",
            id="ignored-not-in-parameters",
        ),
        pytest.param({"models": [_model("test/a", redirect=True)]}, "replacement", id="redirect"),
        pytest.param({"models": [{**_model("test/a"), "id": "bare"}]}, "bare", id="id-no-slash"),
        pytest.param(
            {"models": [_model("test/a", default_size="256x256")]}, "default_size", id="size"
        ),
        pytest.param({"models": [_model("test/a", n_max=0)]}, "n_max", id="n-max-zero"),
        pytest.param({"models": [_model("test/a", colour="red")]}, "colour", id="unknown-key"),
        pytest.param(
            {"models": [_model("test/a", generations=False)]},
            "must edit",
            id="edit-only-model-that-does-not-edit",
        ),
        pytest.param(
            {"models": [_model("test/a", max_input_images=1, mask_required=True)]},
            "mask_required needs masks",
            id="mask-required-without-masks",
        ),
        pytest.param(
            {
                "models": [
                    _model("test/a", generations=False, max_input_images=1, fallbacks=["test/b"]),
                    _model("test/b"),
                ]
            },
            "no fallbacks",
            id="edit-only-model-with-fallbacks",
        ),
        pytest.param(
            {
                "models": [
                    _model("test/a", fallbacks=["test/b"]),
                    _model("test/b", generations=False, max_input_images=1),
                ]
            },
            "only edits",
            id="fallback-that-only-edits",
        ),
        pytest.param(
            {
                "models": [
                    _model(
                        "test/a", shutdown_date="2026-01-01", replacement="test/b", redirect=True
                    ),
                    _model("test/b", generations=False, max_input_images=1),
                ]
            },
            "only edits",
            id="redirect-to-a-model-that-only-edits",
        ),
    ],
)
def test_invalid_catalog_raises_catalog_error(document: dict[str, Any], mentions: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document)
    assert mentions in str(caught.value)


def test_catalog_file_that_is_not_toml_raises_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text("[[models]\nid = ", encoding="utf-8")
    with pytest.raises(CatalogError):
        load_catalog(path)


def test_operator_catalog_file_replaces_the_packaged_one(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[[models]]\nid = "acme/one"\nprovider = "acme"\nupstream_model = "one-v1"\n',
        encoding="utf-8",
    )
    catalog = load_catalog(path)
    assert [spec.id for spec in catalog] == ["acme/one"]
    assert catalog.resolve("acme/one", NOW).upstream_model == "one-v1"


# ---------------------------------------------------------------- free WxH size rule


@pytest.fixture(scope="module")
def gpt_image_2_rule(catalog: Catalog) -> FreeSizeRule:
    spec = catalog.get("openai/gpt-image-2")
    assert spec is not None
    assert spec.free_size is not None
    return spec.free_size


@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(1040, 1024, id="multiple-of-16"),
        pytest.param(3840, 1280, id="longest-side-3840-at-3-to-1"),
        pytest.param(3072, 1024, id="aspect-exactly-3-to-1"),
        pytest.param(1024, 3072, id="aspect-exactly-1-to-3"),
        pytest.param(1024, 640, id="exactly-min-pixels"),
        pytest.param(3840, 2160, id="exactly-max-pixels"),
        pytest.param(2880, 2880, id="square-at-max-pixels"),
        pytest.param(1280, 720, id="720p"),
    ],
)
def test_free_size_inside_the_rule(gpt_image_2_rule: FreeSizeRule, width: int, height: int) -> None:
    assert gpt_image_2_rule.violation(width, height) is None


@pytest.mark.parametrize(
    ("width", "height", "reason"),
    [
        pytest.param(1032, 1024, "multiples of 16", id="width-not-multiple-of-16"),
        pytest.param(1024, 1032, "multiples of 16", id="height-not-multiple-of-16"),
        pytest.param(3856, 1296, "longest side", id="longest-side-3856"),
        pytest.param(1296, 3856, "longest side", id="tall-side-3856"),
        pytest.param(3088, 1024, "aspect ratio", id="aspect-above-3-to-1"),
        pytest.param(1024, 3088, "aspect ratio", id="aspect-above-1-to-3"),
        pytest.param(1024, 624, "pixel count", id="below-min-pixels"),
        pytest.param(3840, 2176, "pixel count", id="above-max-pixels"),
        pytest.param(2896, 2896, "pixel count", id="square-above-max-pixels"),
    ],
)
def test_free_size_outside_the_rule(
    gpt_image_2_rule: FreeSizeRule, width: int, height: int, reason: str
) -> None:
    problem = gpt_image_2_rule.violation(width, height)
    assert problem is not None
    assert reason in problem


def test_free_size_rule_description_states_every_bound(gpt_image_2_rule: FreeSizeRule) -> None:
    description = gpt_image_2_rule.describe()
    for fact in ("16", "3840", "3:1", "655,360", "8,294,400"):
        assert fact in description


def test_packaged_parsed_copy_matches_models_toml() -> None:
    text = catalog_module.PACKAGED_CATALOG.read_text(encoding="utf-8")
    copy = json.loads(catalog_module.PARSED_CATALOG.read_text(encoding="utf-8"))
    stale = "models.parsed.json is stale: run `make catalog` after editing models.toml"
    assert copy["sha256"] == catalog_module.digest(text), stale
    assert copy["document"] == tomllib.loads(text), stale


def test_a_current_parsed_copy_is_read_instead_of_the_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "models.toml"
    packaged.write_text(
        '[[models]]\nid = "acme/toml"\nprovider = "acme"\nupstream_model = "t"\n', "utf-8"
    )
    parsed = tmp_path / "models.parsed.json"
    document = {"models": [{"id": "acme/json", "provider": "acme", "upstream_model": "j"}]}
    monkeypatch.setattr(catalog_module, "PACKAGED_CATALOG", packaged)
    monkeypatch.setattr(catalog_module, "PARSED_CATALOG", parsed)
    text = packaged.read_text(encoding="utf-8")
    parsed.write_text(json.dumps({"sha256": catalog_module.digest(text), "document": document}))
    assert [spec.id for spec in load_catalog()] == ["acme/json"]
    # Edited after the copy was written: the TOML is read again.
    packaged.write_text(text.replace("acme/toml", "acme/edited"), "utf-8")
    assert [spec.id for spec in load_catalog()] == ["acme/edited"]
    parsed.write_text("not json")
    assert [spec.id for spec in load_catalog()] == ["acme/edited"]
    parsed.unlink()
    assert [spec.id for spec in load_catalog()] == ["acme/edited"]


# ---------------------------------------------------------------- lifecycle: legacy, disabled


def test_a_disabled_model_is_refused_with_how_to_enable_it() -> None:
    catalog = parse_catalog(
        {
            "models": [
                _model(
                    "acme/next",
                    enabled=False,
                    lifecycle_note="Its request shape is not confirmed.",
                )
            ]
        }
    )
    with pytest.raises(ModelUnavailable) as caught:
        catalog.resolve("acme/next", NOW)
    assert caught.value.code == "model_not_enabled"
    assert caught.value.status == 404
    assert "not confirmed" in caught.value.message
    assert "IMAGEGW_ENABLED_MODELS=acme/next" in caught.value.message


def test_enabling_a_model_serves_it_and_leaves_the_others_alone() -> None:
    catalog = parse_catalog(
        {
            "models": [
                _model("acme/next", enabled=False, snapshots=["next-2026"]),
                _model("acme/later", enabled=False),
            ]
        }
    )
    enabled = catalog.with_enabled(["acme/next", "acme/typo"])
    assert enabled.resolve("acme/next", NOW).spec.enabled
    assert enabled.resolve("acme/next-2026", NOW).upstream_model == "next-2026"
    with pytest.raises(ModelUnavailable):
        enabled.resolve("acme/later", NOW)
    with pytest.raises(ModelUnavailable):
        catalog.resolve("acme/next", NOW)  # the original is unchanged
    assert catalog.unknown_ids(["acme/next", "acme/typo"]) == ["acme/typo"]


def test_the_stability_inpainting_models_only_edit_and_need_a_mask(catalog: Catalog) -> None:
    for model_id in ("stability/stable-image-inpaint", "bedrock/stable-image-inpaint"):
        spec = catalog.get(model_id)
        assert spec is not None
        assert (spec.generations, spec.edits, spec.masks, spec.mask_required) == (
            False,
            True,
            True,
            True,
        )
        assert spec.max_input_images == 1
        assert "size" not in spec.parameters  # the output keeps the input's size
        assert spec.price is not None
    # Bedrock's Image Services are invoked through the US profile, whatever id is sent.
    for alias in ("bedrock/stability.stable-image-inpaint-v1:0", "bedrock/stable-image-inpaint"):
        resolved = catalog.resolve(alias, dt.date(2026, 12, 7))
        assert resolved.upstream_model == "us.stability.stable-image-inpaint-v1:0"
    generators = [spec for spec in catalog if spec.generations]
    assert all(spec.id != "stability/stable-image-inpaint" for spec in generators)
    assert len(generators) == len(catalog) - 2


def test_legacy_and_lifecycle_note_are_published() -> None:
    catalog = parse_catalog(
        {"models": [_model("acme/old", legacy=True, lifecycle_note="Legacy per the docs.")]}
    )
    spec = catalog.resolve("acme/old", NOW).spec
    assert spec.legacy
    assert spec.capabilities()["lifecycle_note"] == "Legacy per the docs."


def test_free_size_rule_with_a_shortest_side() -> None:
    rule = FreeSizeRule(
        multiple_of=32,
        min_edge=256,
        max_edge=1440,
        max_aspect=5.625,
        min_pixels=65536,
        max_pixels=2073600,
    )
    assert rule.violation(256, 1440) is None
    problem = rule.violation(224, 1024)
    assert problem is not None
    assert "at least 256" in problem
    assert "shortest side >= 256" in rule.describe()


def test_imagegw_enabled_models_enables_catalog_models(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(
        '[[models]]\nid = "acme/next"\nprovider = "acme"\nupstream_model = "n"\nenabled = false\n'
        '[[models]]\nid = "acme/later"\nprovider = "acme"\nupstream_model = "l"\nenabled = false\n',
        encoding="utf-8",
    )
    runtime = Runtime(Settings(catalog_file=path, enabled_models=" acme/next , acme/typo"))
    assert runtime.catalog.resolve("acme/next", NOW).spec.enabled
    with pytest.raises(ModelUnavailable):
        runtime.catalog.resolve("acme/later", NOW)
