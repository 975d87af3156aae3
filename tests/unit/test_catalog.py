"""The catalog: parsing, filters, the TTL cache, and the client's catalog and per-call cost."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import pytest

import cometsync
from cometsync import ConfigError, MetricsRecorder, ModelInfo, Pricing
from cometsync._catalog import CatalogCache, catalog_url, filter_catalog, parse_catalog
from cometsync.testing import FakeClock, ScriptedTransport, completion_body, json_response

KEY = "sk-test-SECRET-0123456789"
MSGS = [{"role": "user", "content": "hi"}]

# The record from the source document, verbatim, plus entries that stress the parser.
SEED_ENTRY: Dict[str, Any] = {
    "id": "deepseek-v4-pro",
    "provider": "DeepSeek",
    "model_type": "text",
    "features": ["text-to-text"],
    "pricing": {
        "currency": "USD / M Tokens",
        "input": 0.416,
        "output": 0.832,
        "per_request": None,
        "per_second": None,
    },
    "api_doc_url": "https://apidoc.cometapi.com/api/text/chat",
}


def entry(model: str, inp: Any = 1.0, out: Any = 2.0, **extra: Any) -> Dict[str, Any]:
    pricing = {"currency": "USD / M Tokens", "input": inp, "output": out}
    pricing.update(extra.pop("pricing", {}))
    return {"id": model, "provider": "P", "model_type": "text", "pricing": pricing, **extra}


def body(*entries: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "success": True,
        "page": 0,
        "page_size": 0,
        "total": len(entries),
        "data": list(entries),
    }


# -- parsing --------------------------------------------------------------------------------


def test_seed_record_parses_with_every_field() -> None:
    """The documented catalog record becomes a ModelInfo with its prices and currency."""
    (info,) = parse_catalog(body(SEED_ENTRY))
    assert info == ModelInfo(
        id="deepseek-v4-pro",
        provider="DeepSeek",
        model_type="text",
        features=("text-to-text",),
        pricing=Pricing(input=0.416, output=0.832, currency="USD / M Tokens"),
        api_doc_url="https://apidoc.cometapi.com/api/text/chat",
    )
    assert info.to_dict()["pricing"]["per_request"] is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        ("0.5", None),
        (True, None),
        (-1, None),
        (float("nan"), None),
        (0, 0.0),
        (3, 3.0),
    ],
)
def test_unusable_prices_become_unknown(raw: Any, expected: Optional[float]) -> None:
    """A null, string, bool, negative or NaN price is unknown (None), never a crash or zero."""
    assert Pricing.from_dict({"input": raw}).input == expected


def test_broken_entries_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """An entry without an id is logged and skipped; unknown fields and odd types are ignored."""
    odd = {"id": "odd", "provider": 7, "features": "text", "pricing": "free", "new_field": [1]}
    with caplog.at_level(logging.WARNING, logger="cometsync"):
        models = parse_catalog(body({"provider": "X"}, "junk", odd, SEED_ENTRY))
    assert [m.id for m in models] == ["odd", "deepseek-v4-pro"]
    assert models[0] == ModelInfo(id="odd")
    assert not models[0].pricing.known
    assert [r.getMessage()[:15] for r in caplog.records] == ["catalog entry 0", "catalog entry 1"]


@pytest.mark.parametrize("data", [{"success": False}, [], {"data": {}}, None])
def test_a_body_without_a_data_list_is_not_a_catalog(data: Any) -> None:
    """A body that is not a catalog raises ValueError, which the flow treats as invalid."""
    with pytest.raises(ValueError, match="'data' list"):
        parse_catalog(data)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.cometapi.com/v1", "https://api.cometapi.com/api/models"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/api/models"),
        ("https://gw.example/proxy/comet/v1?x=1", "https://gw.example/api/models"),
    ],
)
def test_catalog_url_is_the_origin_plus_api_models(base: str, expected: str) -> None:
    """The catalog lives at the base URL's origin, outside its path."""
    assert catalog_url(base) == expected


def test_filters_match_case_insensitively_and_combine() -> None:
    """Provider, type and feature filters each narrow the list, ignoring case."""
    models = [
        ModelInfo("a", "OpenAI", "text", ("text-to-text",)),
        ModelInfo("b", "openai", "image", ("text-to-image",)),
        ModelInfo("c", "DeepSeek", "text", ("text-to-text", "tools")),
    ]
    assert [m.id for m in filter_catalog(models, provider="OPENAI")] == ["a", "b"]
    assert [m.id for m in filter_catalog(models, model_type="text")] == ["a", "c"]
    assert [m.id for m in filter_catalog(models, feature="Tools")] == ["c"]
    assert [m.id for m in filter_catalog(models, provider="openai", model_type="text")] == ["a"]
    assert filter_catalog(models) == models


# -- the cache --------------------------------------------------------------------------------


class Loader:
    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.calls = 0

    def __call__(self) -> Tuple[ModelInfo, ...]:
        self.calls += 1
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result  # type: ignore[no-any-return]


def test_cache_loads_once_per_ttl_and_on_refresh() -> None:
    """Within the TTL the cached catalog is returned; after it, or on refresh, it is reloaded."""
    clock = FakeClock()
    first, second, third = (ModelInfo("a"),), (ModelInfo("b"),), (ModelInfo("c"),)
    load = Loader(first, second, third)
    cache = CatalogCache(clock, ttl=60)
    assert cache.cached() is None and cache.prices() == {}
    assert cache.get(load) == first
    clock.advance(59)
    assert cache.get(load) == first and load.calls == 1
    clock.advance(2)
    assert cache.get(load) == second
    assert cache.get(load, refresh=True) == third
    assert cache.prices() == {"c": Pricing()}


def test_a_failed_load_keeps_the_previous_catalog() -> None:
    """A failing load raises from get() and leaves the last good catalog cached."""
    clock = FakeClock()
    load = Loader((ModelInfo("a"),), cometsync.APIConnectionError("down"))
    cache = CatalogCache(clock, ttl=10)
    cache.get(load)
    clock.advance(11)
    with pytest.raises(cometsync.APIConnectionError):
        cache.get(load)
    assert cache.cached() == (ModelInfo("a"),)


def test_quiet_load_failure_is_logged_and_held_back(caplog: pytest.LogCaptureFixture) -> None:
    """A background load failure logs once, returns None, and is not retried for a while."""
    clock = FakeClock()
    load = Loader(cometsync.APIConnectionError("down"), (ModelInfo("a"),))
    cache = CatalogCache(clock, ttl=10, failure_backoff=30)
    with caplog.at_level(logging.WARNING, logger="cometsync"):
        assert cache.get_quietly(load) is None
        assert cache.get_quietly(load) is None
    assert load.calls == 1
    assert "could not load the model catalog" in caplog.text
    clock.advance(31)
    assert cache.get_quietly(load) == (ModelInfo("a"),)


def test_bad_ttl_is_a_config_error() -> None:
    """A TTL that is not a positive number is refused when the client is built."""
    with pytest.raises(ConfigError, match="catalog_ttl"):
        cometsync.Client(api_key=KEY, transport=ScriptedTransport([]), catalog_ttl=0)


# -- the client -------------------------------------------------------------------------------

CATALOG = body(entry("m1", 1.0, 2.0), entry("m2", 10.0, 20.0), entry("m3", 1.5, 2.5))


def make(script: List[Any], **kwargs: Any) -> Tuple[cometsync.Client, ScriptedTransport]:
    transport = ScriptedTransport(script)
    client = cometsync.Client(
        api_key=KEY, base_url="http://gw.test/v1", transport=transport, clock=FakeClock(), **kwargs
    )
    return client, transport


def ok(model: str = "m1") -> Any:
    return json_response(200, completion_body("fine", model=model))


def test_catalog_is_fetched_from_the_origin_without_the_key_and_cached() -> None:
    """catalog() GETs {origin}/api/models with no Authorization, once per TTL, and filters."""
    client, transport = make([json_response(200, CATALOG)])
    assert [m.id for m in client.catalog()] == ["m1", "m2", "m3"]
    assert [m.id for m in client.catalog(provider="p", model_type="TEXT")] == ["m1", "m2", "m3"]
    assert client.catalog(feature="none") == []
    (request,) = transport.requests
    assert (request.method, request.url) == ("GET", "http://gw.test/api/models")
    assert "Authorization" not in request.headers
    assert KEY not in repr(request.headers)


def test_catalog_request_is_retried_like_any_call() -> None:
    """A 503 from the catalog is retried by the same flow before the catalog is returned."""
    client, transport = make([json_response(503, {"error": "busy"}), json_response(200, CATALOG)])
    assert len(client.catalog()) == 3
    assert len(transport.requests) == 2


def test_cost_is_none_until_the_catalog_is_known_then_attached() -> None:
    """Before the catalog is loaded cost is None; after, each completion carries its price."""
    client, _ = make([ok(), json_response(200, CATALOG), ok()])
    first = client.chat.completions.create(model="m1", messages=MSGS)
    assert first.cost is None
    client.catalog()
    second = client.chat.completions.create(model="m1", messages=MSGS)
    # completion_body reports 3 prompt and 2 completion tokens.
    assert second.cost == pytest.approx((3 * 1.0 + 2 * 2.0) / 1e6)
    assert first.cost is None


def test_cost_uses_the_model_that_answered_after_a_fallback() -> None:
    """When the fallback answers, the call is priced at the fallback's prices."""
    client, _ = make(
        [
            json_response(200, CATALOG),
            json_response(
                404, {"error": {"message": "model m2 not found", "code": "model_not_found"}}
            ),
            ok("m3"),
        ],
        fallback_models=["m3"],
    )
    client.catalog()
    result = client.chat.completions.create(model="m1", messages=MSGS)
    assert result.cost == pytest.approx((3 * 1.5 + 2 * 2.5) / 1e6)


def test_price_calls_loads_the_catalog_on_the_first_call_only() -> None:
    """With price_calls=True the first call fetches the catalog once, then reuses it."""
    client, transport = make([ok(), json_response(200, CATALOG), ok()], price_calls=True)
    assert client.chat.completions.create(model="m1", messages=MSGS).cost is not None
    assert client.chat.completions.create(model="m1", messages=MSGS).cost is not None
    assert [r.url.rsplit("/", 1)[-1] for r in transport.requests] == [
        "completions",
        "models",
        "completions",
    ]


def test_a_catalog_failure_never_fails_the_priced_call(caplog: pytest.LogCaptureFixture) -> None:
    """If the catalog cannot be loaded, the completion is still returned, with cost None."""
    client, _ = make(
        [ok(), json_response(401, {"error": {"message": "nope"}})],
        price_calls=True,
    )
    with caplog.at_level(logging.WARNING, logger="cometsync"):
        result = client.chat.completions.create(model="m1", messages=MSGS)
    assert result.choices[0].message.content == "fine"
    assert result.cost is None
    assert "could not load the model catalog" in caplog.text


def test_metrics_recorder_sums_cost_per_model() -> None:
    """A MetricsRecorder used as on_attempt receives each priced call's cost per model."""
    recorder = MetricsRecorder()
    client, _ = make([json_response(200, CATALOG), ok(), ok(), ok("m2")], on_attempt=recorder)
    client.catalog()
    for model in ("m1", "m1", "m2"):
        client.chat.completions.create(model=model, messages=MSGS)
    costs = recorder.cost_by_model()
    assert costs == pytest.approx({"m1": 2 * 7e-6, "m2": 70e-6})


def test_expensive_fallback_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """A fallback over 3x the primary's price is logged as a warning once per pair."""
    client, _ = make([json_response(200, CATALOG), ok(), ok(), ok()], fallback_models=["m2"])
    client.catalog()
    with caplog.at_level(logging.WARNING, logger="cometsync"):
        client.chat.completions.create(model="m1", messages=MSGS)
        client.with_options().chat.completions.create(model="m1", messages=MSGS)
        client.chat.completions.create(model="m1", messages=MSGS, fallback_models=["m3"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "fallback model m2 costs over 3x the primary m1" in warnings[0]


def test_estimate_cost_loads_the_catalog_and_prices_the_chain() -> None:
    """estimate_cost fetches the catalog if needed and reports unknown models as unknown."""
    client, transport = make([json_response(200, CATALOG)])
    est = client.estimate_cost(["m1", "m2", "nope"], 1_000_000, 0)
    assert dict(est.per_model) == {"m1": 1.0, "m2": 10.0, "nope": None}
    assert est.expensive_fallbacks == ("m2",)
    assert est.unknown == ("nope",)
    assert client.estimate_cost(["m1"], 0, 1_000_000).primary == 2.0
    assert len(transport.requests) == 1


def test_a_failing_cost_hook_never_loses_the_result(caplog: pytest.LogCaptureFixture) -> None:
    """An on_attempt hook whose add_cost raises is logged; the priced completion is returned."""

    class Hook:
        def __call__(self, attempt: cometsync.Attempt) -> None:
            pass

        def add_cost(self, model: Optional[str], usd: float) -> None:
            raise RuntimeError("observer bug")

    client, _ = make([json_response(200, CATALOG), ok()], on_attempt=Hook())
    client.catalog()
    with caplog.at_level(logging.ERROR, logger="cometsync"):
        result = client.chat.completions.create(model="m1", messages=MSGS)
    assert result.cost is not None
    assert "add_cost raised" in caplog.text
