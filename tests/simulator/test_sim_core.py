"""The fault model driven directly with explicit times: routing and auth; no sockets, no sleeps."""

from __future__ import annotations

from simulator import Core

from .sim_helpers import AUTH, KEY, error_code


def test_routes_auth_and_limits() -> None:
    """Unknown paths 404, wrong methods 405, missing or wrong keys 401, big bodies 413."""
    core = Core({"models": {"m1": {}}}, api_key=KEY)
    assert core.handle("GET", "/nope", AUTH, b"", 0).status == 404
    assert core.handle("GET", "/v1/nope", AUTH, b"", 0).status == 404
    assert core.handle("GET", "/v1/chat/completions", AUTH, b"", 0).status == 405
    missing = core.handle("POST", "/v1/chat/completions", {}, b"{}", 0)
    assert missing.status == 401 and error_code(missing) == "invalid_api_key"
    wrong = core.handle("GET", "/v1/models", {"authorization": "Bearer sk-wrong-key-99"}, b"", 0)
    assert wrong.status == 401
    big = core.handle("POST", "/v1/chat/completions", AUTH, b"", 0, body_length=10**9)
    assert big.status == 413 and error_code(big) == "request_too_large"


def test_the_public_names_are_sorted_and_all_import() -> None:
    """simulator.__all__ is in plain sorted() order (the house rule) and every name exists."""
    import simulator

    assert list(simulator.__all__) == sorted(simulator.__all__)
    for name in simulator.__all__:
        assert getattr(simulator, name) is not None
