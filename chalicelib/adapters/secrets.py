"""Webhook signing secrets at rest: encrypted with a KMS key (event_ports.SecretBox).

A secret is a few dozen bytes, well under KMS's 4 KB for direct encryption, so no data key is
needed. The encryption context names the webhook, so a ciphertext copied onto another webhook's
item does not decrypt. A leaked table read gives ciphertext only; decrypting needs kms:Decrypt,
which only the delivery function has. Locally moto's KMS plays the key (same code)."""
from __future__ import annotations

import base64


class KmsSecretBox:
    def __init__(self, kms_client, key_id: str):
        self.kms = kms_client
        self.key_id = key_id

    def seal(self, plaintext: str, context: dict[str, str]) -> str:
        blob = self.kms.encrypt(KeyId=self.key_id, Plaintext=plaintext.encode(),
                                EncryptionContext=context)["CiphertextBlob"]
        return base64.b64encode(blob).decode("ascii")

    def open(self, sealed: str, context: dict[str, str]) -> str:
        # KeyId pins the key: a ciphertext made under another key is refused, not decrypted.
        return self.kms.decrypt(CiphertextBlob=base64.b64decode(sealed), KeyId=self.key_id,
                                EncryptionContext=context)["Plaintext"].decode()
