"""``python -m services.simulator``: a Kalshi-compatible exchange on one port.

REST answers at ``http://HOST:PORT/trade-api/v2``, the WebSocket at
``ws://HOST:PORT/trade-api/ws/v2``, fault injection and ground truth under
``/sim``. It needs no Redis.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime

from services.simulator.auth import AccountSpec
from services.simulator.faults import FaultConfig, FaultConfigError
from services.simulator.ratelimit import TIERS
from services.simulator.scenarios import SCENARIOS
from services.simulator.server import serve_forever
from services.simulator.state import CLOCKS, SimSettings
from services.simulator.ws import DEFAULT_QUEUE_LIMIT
from shared.config import ConfigError, MetricsSettings, load_settings
from shared.metrics import serve as serve_metrics

DESCRIPTION = "A Kalshi-compatible exchange simulator (REST + WebSocket)."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.simulator", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--scenario", choices=SCENARIOS, default="mixed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="KEY_ID=PUBLIC_KEY.pem[:CASH_CENTS]",
        help="an API key allowed to trade (repeatable; default cash $10,000)",
    )
    parser.add_argument("--tier", choices=[*TIERS, "none"], default="basic", help="rate limits")
    parser.add_argument("--flow-rate", type=float, default=50.0, help="book changes per second")
    parser.add_argument("--mispricing-rate", type=float, default=0.02, help="per second")
    parser.add_argument("--no-agents", action="store_true", help="no simulated traders")
    parser.add_argument(
        "--replay-file", help="recorded WS messages (JSON lines) for --scenario replay"
    )
    parser.add_argument("--replay-speed", type=float, default=1.0, help="0 = as fast as possible")
    parser.add_argument("--start", help="scenario start, ISO 8601 (default: now)")
    parser.add_argument(
        "--clock",
        choices=CLOCKS,
        default="wall",
        help="tick: scenario time moves 50 ms per agent tick (same seed, same feed)",
    )
    parser.add_argument(
        "--ws-queue-limit",
        type=int,
        default=DEFAULT_QUEUE_LIMIT,
        help="messages waiting per WebSocket client before error 25",
    )
    faults = parser.add_argument_group("faults (also POST /sim/faults)")
    for name, default in vars(FaultConfig()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):
            faults.add_argument(flag, action="store_true")
        else:
            faults.add_argument(flag, type=type(default), default=default)
    return parser


def settings_from(args: argparse.Namespace) -> SimSettings:
    fault_values = {name: getattr(args, name) for name in vars(FaultConfig())}
    start_ms = None
    if args.start:
        start_ms = int(datetime.fromisoformat(args.start.replace("Z", "+00:00")).timestamp() * 1000)
    return SimSettings(
        host=args.host,
        port=args.port,
        scenario=args.scenario,
        seed=args.seed,
        accounts=[AccountSpec.parse(text) for text in args.account],
        tier=None if args.tier == "none" else args.tier,
        flow_rate=args.flow_rate,
        mispricing_rate=args.mispricing_rate,
        agents=not args.no_agents,
        replay_file=args.replay_file,
        replay_speed=args.replay_speed,
        faults=FaultConfig.from_json(fault_values),
        start_ms=start_ms,
        clock=args.clock,
        ws_queue_limit=args.ws_queue_limit,
    )


def metrics_settings() -> MetricsSettings:
    """The shared ``metrics`` settings (KHV_METRICS__*); the defaults if the rest is unset."""
    try:
        return load_settings().metrics
    except ConfigError:
        return MetricsSettings()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValueError, OSError, FaultConfigError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    serve_metrics(metrics_settings(), "simulator")
    logging.info(
        "listening on http://%s:%d/trade-api/v2 (scenario %s, seed %d, %d accounts)",
        settings.host, settings.port, settings.scenario, settings.seed, len(settings.accounts),
    )  # fmt: skip
    serve_forever(settings)
    return 0
