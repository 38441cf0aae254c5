"""The scheduled sweep: what must happen even when no event comes."""
from __future__ import annotations


class Sweep:
    def __init__(self, processor, deleter):
        self.processor = processor
        self.deleter = deleter

    def run(self) -> dict:
        """Expire uploads that never came (and register those S3 holds whose event is late),
        fail processing that died for good, and finish cancels and deletes a crash interrupted."""
        return {"expired": self.processor.expire_uploads(), "deletes_resumed": self.deleter.resume()}
