"""Settings precedence: flag > environment > config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from imgbatch.cli import Deps, cli
from imgbatch.config import ConfigError, default_config_path, resolve_settings


def write_config(path: Path, api_url: str = "http://file.test", token: str = "file-token") -> Path:
    path.write_text(f'api_url = "{api_url}"\ntoken = "{token}"\n')
    return path


def test_defaults_target_the_local_stack(missing_config):
    s = resolve_settings(api_url=None, token=None, config_path=missing_config, env={})
    assert (s.api_url, s.token) == ("http://127.0.0.1:8000", "local-dev-token")


def test_file_beats_defaults(tmp_path):
    cfg = write_config(tmp_path / "c.toml")
    s = resolve_settings(api_url=None, token=None, config_path=cfg, env={})
    assert (s.api_url, s.token, s.token_source) == ("http://file.test", "file-token", str(cfg))


def test_env_beats_file(tmp_path):
    cfg = write_config(tmp_path / "c.toml")
    env = {"IMGBATCH_API_URL": "http://env.test/", "IMGBATCH_TOKEN": "env-token"}
    s = resolve_settings(api_url=None, token=None, config_path=cfg, env=env)
    assert (s.api_url, s.token, s.token_source) == ("http://env.test", "env-token", "IMGBATCH_TOKEN")


def test_flag_beats_env(tmp_path):
    cfg = write_config(tmp_path / "c.toml")
    env = {"IMGBATCH_API_URL": "http://env.test", "IMGBATCH_TOKEN": "env-token"}
    s = resolve_settings(api_url="http://flag.test", token="flag-token", config_path=cfg, env=env)
    assert (s.api_url, s.token, s.token_source) == ("http://flag.test", "flag-token", "--token")


def test_empty_env_values_count_as_unset(missing_config):
    s = resolve_settings(api_url=None, token=None, config_path=missing_config,
                         env={"IMGBATCH_TOKEN": "", "IMGBATCH_API_URL": ""})
    assert s.token == "local-dev-token"


def test_config_path_from_env_and_xdg(tmp_path):
    assert default_config_path({"IMGBATCH_CONFIG": str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    assert default_config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "imgbatch" / "config.toml"
    assert default_config_path({"HOME": str(tmp_path)}) == tmp_path / ".config" / "imgbatch" / "config.toml"


@pytest.mark.parametrize("content", ["api_url = ", "token = 5\n", 'api_url = "ftp://x"\n'])
def test_bad_config_is_a_config_error(tmp_path, content):
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError):
        resolve_settings(api_url=None, token=None, config_path=cfg, env={})


# Through the CLI: which URL and token actually reach the (fake) server.


def seen(fake) -> tuple[str, str]:
    request = fake.api_requests[-1]
    return f"{request.url.scheme}://{request.url.host}", request.headers["authorization"]


def test_cli_precedence_flag_env_file(run, fake, tmp_path):
    cfg = write_config(tmp_path / "c.toml")
    env = {"IMGBATCH_CONFIG": str(cfg)}

    run("stats", env=env)
    assert seen(fake) == ("http://file.test", "Bearer file-token")

    run("stats", env={**env, "IMGBATCH_API_URL": "http://env.test", "IMGBATCH_TOKEN": "env-token"})
    assert seen(fake) == ("http://env.test", "Bearer env-token")

    run("--api-url", "http://flag.test", "--token", "flag-token", "stats",
        env={**env, "IMGBATCH_API_URL": "http://env.test", "IMGBATCH_TOKEN": "env-token"})
    assert seen(fake) == ("http://flag.test", "Bearer flag-token")


def test_cli_config_flag_and_401_names_the_file(run, fake, tmp_path):
    cfg = write_config(tmp_path / "c.toml", token="stale")

    result = run("--config", str(cfg), "stats")

    assert result.exit_code == 3
    assert f"the token in use came from {cfg}" in result.stderr


def test_cli_reads_the_real_environment_when_no_env_is_injected(fake, tmp_path):
    deps = Deps(api_transport=fake.api_transport, storage_transport=fake.s3_transport, sleep=fake.sleep)
    env = {"IMGBATCH_CONFIG": str(tmp_path / "none.toml"), "IMGBATCH_API_URL": "http://os-env.test",
           "IMGBATCH_TOKEN": "local-dev-token"}

    result = CliRunner().invoke(cli, ["stats"], obj=deps, env=env)

    assert result.exit_code == 0, result.output
    assert seen(fake) == ("http://os-env.test", "Bearer local-dev-token")


def test_broken_config_is_a_usage_error(run, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("this is not toml")

    result = run("--config", str(cfg), "stats")

    assert result.exit_code == 2
    assert "cannot read config file" in result.stderr
    # ...but help still works, since settings are resolved only when needed.
    assert run("--config", str(cfg), "stats", "--help").exit_code == 0
