"""The project config file (`mlinv.toml` in the working directory, or `--config FILE`).

    [mappings]                     # event column = dotted path in the record
    latency_ms = "payload.timing.total_ms"
    model_version = "meta.build"

Mappings are stored in the database at ingest, so later ingests and every query agree.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UsageError

DEFAULT_CONFIG = "mlinv.toml"


@dataclass
class Settings:
    mappings: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


def load_config(path: Path | None = None) -> Settings:
    """Read the config file; a missing default file is fine, a missing named one is not."""
    from .ingest.pipeline import parse_mappings

    explicit = path is not None
    path = path or Path(DEFAULT_CONFIG)
    if not path.exists():
        if explicit:
            raise UsageError(f"config file {path} does not exist")
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    unknown = set(data) - {"mappings"}
    if unknown:
        raise UsageError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}",
                         hint="known: [mappings]")
    raw = data.get("mappings", {})
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise UsageError(f"{path}: [mappings] must map event columns to dotted paths (strings)")
    try:
        mappings = parse_mappings([f"{k}={v}" for k, v in raw.items()])
    except UsageError as exc:
        raise UsageError(f"{path}: {exc.message.replace('--map ', 'mapping ')}", exc.hint) from None
    return Settings(mappings=mappings, path=path)
