"""`python -m deploy.tokens create --owner NAME --stage prod`: a new random token, printed once,
stored only as its SHA-256 in the stage's meta table, and accepted by the deployed authorizer
(which has no LOCAL_API_TOKENS in AWS)."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace

import boto3
import pytest
from moto import mock_aws

from deploy_support import REGION, ROOT

from chalicelib import wiring
from deploy import template as tmpl
from deploy import tokens


@pytest.fixture
def prod_tables(aws_env):
    with mock_aws():
        settings = tokens.settings_for_stage("prod", REGION, env={})
        wiring.Container(settings).provision()
        yield settings


def test_create_prints_a_token_and_stores_only_its_hash(prod_tables, capsys):
    assert prod_tables.table("meta") == tmpl.stage_environment(tmpl.load_config(), "prod")["META_TABLE"]
    assert tokens.main(["create", "--owner", "studio", "--stage", "prod", "--region", REGION]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert len(token) >= 43 and "studio" in out.err       # 256 random bits, urlsafe base64
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=prod_tables.table("meta"))["Items"]
    assert items == [{"id": {"S": f"token#{hashlib.sha256(token.encode()).hexdigest()}"}, "owner": {"S": "studio"}}]
    assert token not in str(items)

    tokens.main(["create", "--owner", "studio", "--stage", "prod", "--region", REGION])
    assert capsys.readouterr().out.strip() != token


def test_the_authorizer_accepts_a_created_token_without_local_tokens(prod_tables):
    from chalice.test import Client

    from app import app
    container = wiring.reset(replace(prod_tables, local_api_tokens={}))
    try:
        token = tokens.create_token(container.repository, "studio")
        with Client(app, stage_name="prod") as client:
            ok = client.http.get("/me", headers={"Authorization": f"Bearer {token}"})
            bad = client.http.get("/me", headers={"Authorization": f"Bearer {token}x"})
    finally:
        wiring.reset()
    assert ok.status_code == 200 and ok.json_body == {"owner": "studio"}
    assert bad.status_code == 401


@pytest.mark.parametrize("owner", ["", "   ", "a#b", "x" * 101, "tab\there"])
def test_bad_owners_are_refused(owner):
    with pytest.raises(ValueError):
        tokens.validate_owner(owner)


def test_the_command_line_entry_point():
    result = subprocess.run([sys.executable, "-m", "deploy.tokens", "create", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--owner" in result.stdout and "--stage" in result.stdout
    result = subprocess.run([sys.executable, "-m", "deploy.tokens", "create", "--owner", "a#b", "--region", REGION],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "owner must be" in result.stderr
