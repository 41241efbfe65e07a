"""Make an API key pair for a simulator account.

    python -m services.simulator.keygen DIR [NAME]

writes DIR/NAME.pem (the private key, mode 0600: the bot's KALSHI_PRIVATE_KEY_PATH)
and DIR/NAME.pub.pem (for the simulator's ``--account NAME=DIR/NAME.pub.pem``).
Existing keys are kept, so the command can run before every start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from shared.kalshi.signing import generate_private_key, private_pem, public_pem


def ensure_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    if not (private.is_file() and public.is_file()):
        key = generate_private_key()
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem(key))
        public.write_bytes(public_pem(key))
    return private, public


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2 or argv[0] in {"-h", "--help"}:
        print(__doc__, file=sys.stderr)
        return 2
    private, public = ensure_key_pair(Path(argv[0]), argv[1] if len(argv) > 1 else "paper")
    print(f"keys: {private} {public}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
