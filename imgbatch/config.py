"""Where the API URL and token come from: flag > environment > config file > defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_API_URL = "http://127.0.0.1:8000"
# The token `make run` accepts out of the box, so the client works against a fresh local stack.
DEFAULT_TOKEN = "local-dev-token"

ENV_API_URL = "IMGBATCH_API_URL"
ENV_TOKEN = "IMGBATCH_TOKEN"
ENV_CONFIG = "IMGBATCH_CONFIG"


class ConfigError(ValueError):
    """The config file exists but cannot be used."""


@dataclass(frozen=True)
class Settings:
    api_url: str
    token: str
    # Where the token came from, so a 401 can say which setting to fix.
    token_source: str
    config_path: Path


def default_config_path(env: Mapping[str, str]) -> Path:
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or Path.home(), ".config")
    return Path(base) / "imgbatch" / "config.toml"


def read_config_file(path: Path) -> dict[str, str]:
    """Read api_url/token from a TOML file; a missing file is simply empty."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    values = {}
    for key in ("api_url", "token"):
        if key in data:
            if not isinstance(data[key], str) or not data[key].strip():
                raise ConfigError(f"config file {path}: '{key}' must be a non-empty string")
            values[key] = data[key].strip()
    return values


def resolve_settings(
    *,
    api_url: str | None,
    token: str | None,
    config_path: Path | None,
    env: Mapping[str, str],
) -> Settings:
    path = config_path or default_config_path(env)
    from_file = read_config_file(path)

    def pick(flag: str | None, flag_name: str, env_name: str, key: str, default: str) -> tuple[str, str]:
        # Empty strings count as unset: `IMGBATCH_TOKEN= imgbatch ...` should not send "Bearer ".
        if flag:
            return flag, flag_name
        if env.get(env_name):
            return env[env_name], env_name
        if key in from_file:
            return from_file[key], str(path)
        return default, "the built-in default"

    url, _ = pick(api_url, "--api-url", ENV_API_URL, "api_url", DEFAULT_API_URL)
    tok, tok_source = pick(token, "--token", ENV_TOKEN, "token", DEFAULT_TOKEN)
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"API URL must start with http:// or https://, got {url!r}")
    return Settings(api_url=url, token=tok.strip(), token_source=tok_source, config_path=path)
