"""Every test runs with fake credentials and no config files, so nothing can reach a real account."""
import os

import pytest

from devstack.gateway import install as _gateway_responses
from devstack.moto_patches import install as _atomic_moto_dynamodb

_atomic_moto_dynamodb()
_gateway_responses()


def _reuse_clients() -> None:
    """A boto3 client costs about 35 ms of CPU to create, and every test builds a container with
    five: the suite reuses one per service, endpoint, configuration and credentials (moto's
    in-process mock intercepts any client, whenever it was made; its state is per test)."""
    import os

    from chalicelib import wiring
    made = {}
    create = wiring.Container.client

    def client(self, service, **config):
        key = (service, self.settings.region, self.settings.endpoint_url, repr(sorted(config.items())),
               os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY"),
               os.environ.get("AWS_SESSION_TOKEN"))
        if key not in made:
            made[key] = create(self, service, **config)
        return made[key]

    wiring.Container.client = client


_reuse_clients()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "UPLOAD_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
