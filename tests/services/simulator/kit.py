"""Starting simulators in tests, signing requests, and validating against Kalshi's specs."""

from __future__ import annotations

import copy
from collections.abc import Generator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.simulator.auth import AccountSpec
from services.simulator.server import SimulatorServer
from services.simulator.state import SimSettings
from shared.kalshi.signing import Signer, generate_private_key

SPECS = Path(__file__).resolve().parents[4] / "shared" / "reference" / "kalshi"
KEYS = {name: generate_private_key() for name in ("alice", "bob")}
# Fields Kalshi's spring-2026 spec copy still requires but protocols.md (newer, authoritative)
# says were removed: integer cents and integer counts are gone from every payload.
REMOVED_WS_FIELDS = {
    "orderbookDeltaPayload": {"price", "delta"},
    "tickerPayload": {"price", "yes_bid", "yes_ask", "volume", "open_interest"},
    "tradePayload": {"yes_price", "no_price", "count"},
    "fillPayload": {"yes_price", "count", "post_position"},
    "marketPositionPayload": {
        "position",
        "position_cost",
        "realized_pnl",
        "fees_paid",
        "position_fee_cost",
        "volume",
    },
}


def signer(name: str) -> Signer:
    return Signer(name, KEYS[name])


class KalshiAuth(httpx.Auth):
    def __init__(self, name: str) -> None:
        self.signer = signer(name)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.signer.headers(request.method, request.url.path))
        yield request


def start_server(**overrides: Any) -> SimulatorServer:
    settings = SimSettings(
        port=0,
        scenario="mixed",
        seed=7,
        accounts=[AccountSpec(n, k.public_key()) for n, k in KEYS.items()],
        tier=None,
        flow_rate=0,
        mispricing_rate=0,
    )
    for key, value in overrides.items():
        setattr(settings, key, value)
    return SimulatorServer(settings).start()


def client(server: SimulatorServer, name: str | None = "alice") -> httpx.Client:
    return httpx.Client(
        base_url=server.rest_url, auth=KalshiAuth(name) if name else None, timeout=10
    )


# --- spec loading ---------------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    path = SPECS / name
    if not path.is_file():
        pytest.skip(f"Kalshi spec {path} is absent (it lives outside the project)")
    from ruamel.yaml import YAML  # YAML 1.2: keys yes/no stay strings

    loaded: dict[str, Any] = YAML(typ="safe").load(path.read_text())
    return loaded


def _to_json_schema(node: Any, prefix: str) -> Any:
    """OpenAPI 3.0 / AsyncAPI schema -> JSON Schema 2020-12 (nullable, $ref paths)."""
    if isinstance(node, list):
        return [_to_json_schema(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v, prefix) for k, v in node.items() if not k.startswith("x-")}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace(prefix, "#/$defs/")
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def openapi_defs() -> dict[str, Any]:
    spec = _load("openapi.yaml")
    return _to_json_schema(spec["components"]["schemas"], "#/components/schemas/")


@cache
def asyncapi_defs() -> dict[str, Any]:
    spec = _load("asyncapi.yaml")
    defs = copy.deepcopy(_to_json_schema(spec["components"]["schemas"], "#/components/schemas/"))
    defs["marketTicker"].pop("pattern", None)  # the spec's own examples carry dots
    for name, removed in REMOVED_WS_FIELDS.items():
        msg = defs[name]["properties"]["msg"]
        msg["required"] = [f for f in msg["required"] if f not in removed]
    # protocols.md: code 25 (subscription buffer overflow) came after the spec copy's 1-22
    defs["errorResponsePayload"]["properties"]["msg"]["properties"]["code"]["maximum"] = 25
    return defs


def validate(defs: dict[str, Any], schema: str, instance: Any) -> None:
    import jsonschema

    root = {"$defs": defs, "$ref": f"#/$defs/{schema}"}
    jsonschema.Draft202012Validator(root).validate(instance)


def check_rest(schema: str, instance: Any) -> None:
    validate(openapi_defs(), schema, instance)


def check_ws(schema: str, instance: Any) -> None:
    validate(asyncapi_defs(), schema, instance)
