"""One PynamoDB connection, over the container's boto3 DynamoDB client, for every table.

PynamoDB gives each model class its own connection and each connection its own botocore client;
creating a client costs about 35 ms of CPU, so eight tables added a quarter of a second to every
cold start (and to every test that builds a container). Here every model and the repository's
transactions go through one client, configured with the others in wiring.
"""
from __future__ import annotations

from pynamodb.connection import Connection

from .models import Models


class ClientConnection(Connection):
    """PynamoDB's connection over a client made elsewhere."""

    def __init__(self, client, region: str):
        super().__init__(region=region)
        self._given_client = client

    @property
    def client(self):
        return self._given_client


def share(models: Models, connection: Connection) -> Connection:
    """Every model of `models` talks through `connection` (which learns their tables' schemas)."""
    for model in models.all():
        table = model._get_connection()   # PynamoDB's cached TableConnection: schema, no client yet
        connection.add_meta_table(table.get_meta_table())
        table.connection = connection
    return connection
