"""Deploy tier: the packaged stack (`make package`), proven without AWS.

`chalice package` runs once per test session (deploy.package, exactly what `make package`
runs); every test reads its output in build/package. The SAM template is translated to plain
CloudFormation with aws-sam-translator (IAM managed-policy lookups stubbed: the template names
none), then linted with cfn-lint and created in moto's CloudFormation.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helper modules next to this file

from deploy_support import REGION, build_package, translate, with_code_in_s3  # noqa: E402


@pytest.fixture(scope="session")
def package_dir() -> Path:
    return build_package()


@pytest.fixture(scope="session")
def sam_template(package_dir) -> dict:
    return json.loads((package_dir / "sam.json").read_text())


@pytest.fixture(scope="session")
def cfn_template(sam_template) -> dict:
    return translate(with_code_in_s3(sam_template))


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


# The e2e tier's session-scoped local stack (moto server + HTTP API on free ports), for schemathesis.
from e2e.conftest import stack  # noqa: E402,F401
