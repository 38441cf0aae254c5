"""Resumable uploads in parts: how a file is cut, and whether what S3 holds completes it. Pure.

A file above the multipart threshold is uploaded as one S3 multipart upload whose parts have a
size fixed by the file's size alone (`plan_parts`), so every client that resumes it, after a
crash, a reload or on another machine, cuts it exactly as the first one did. S3 lists the parts
it holds (ListParts); `PartPlan.check` compares them with the plan: a part of the wrong size is
not "uploaded", it is to be sent again (sending a part number again replaces it in S3).
"""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB          # S3: every part but the last is at least this
MAX_PART_SIZE = 5 * 1024 * MIB   # S3: no part is larger
MAX_PARTS = 10_000               # S3: part numbers 1..10,000


def uses_multipart(size: int, threshold: int) -> bool:
    """Files above the threshold are uploaded in parts; the rest with one presigned POST."""
    return size > threshold


@dataclass(frozen=True)
class PartPlan:
    size: int
    part_size: int

    @property
    def count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def length(self, number: int) -> int:
        """Bytes of part `number` (1-based): the part size, the remainder for the last."""
        if not 1 <= number <= self.count:
            raise ValueError(f"part {number} is outside 1..{self.count}")
        return self.part_size if number < self.count else self.size - self.part_size * (self.count - 1)

    def offset(self, number: int) -> int:
        return self.part_size * (number - 1)

    def check(self, held: dict[int, int]) -> "PartCheck":
        """Compare the parts S3 holds (number -> size) with the plan."""
        uploaded, wrong = [], []
        for number in range(1, self.count + 1):
            if number not in held:
                continue
            if held[number] == self.length(number):
                uploaded.append(number)
            else:
                wrong.append(WrongPart(number, held[number], self.length(number)))
        extra = sorted(n for n in held if not 1 <= n <= self.count)
        missing = [n for n in range(1, self.count + 1) if n not in held]
        return PartCheck(self, uploaded, wrong, missing, extra)


@dataclass(frozen=True)
class WrongPart:
    number: int
    size: int
    expected: int


@dataclass(frozen=True)
class PartCheck:
    plan: PartPlan
    uploaded: list[int]        # held at the planned size
    wrong: list[WrongPart]     # held at another size: to be sent again
    missing: list[int]         # not held at all
    extra: list[int]           # numbers beyond the plan (S3 accepts up to 10,000): never completed

    @property
    def to_send(self) -> list[int]:
        """Parts a client still has to upload, in order."""
        return sorted(self.missing + [w.number for w in self.wrong])

    @property
    def bytes_uploaded(self) -> int:
        return sum(self.plan.length(n) for n in self.uploaded)

    def completion_problem(self, file_name: str) -> str | None:
        """Why the upload cannot be completed yet, naming the parts; None when it can."""
        problems = []
        if self.wrong:
            problems.append("; ".join(f"part {w.number} is {w.size} bytes, expected {w.expected}" for w in self.wrong[:5])
                            + (f" (and {len(self.wrong) - 5} more wrong parts)" if len(self.wrong) > 5 else ""))
        if self.missing:
            problems.append(f"{_parts(self.missing)} {'is' if len(self.missing) == 1 else 'are'} missing")
        if not problems:
            return None
        return (f"{file_name}: cannot complete the upload: {'; '.join(problems)}. Upload "
                f"{_parts(self.to_send)} (POST .../multipart hands out their URLs), then complete again")


def _parts(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    more = f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
    return f"part{'s' if len(numbers) > 1 else ''} {shown}{more}"


def plan_parts(size: int, preferred_part_size: int) -> PartPlan:
    """The preferred part size, grown (in whole MiB) when the file would need more than
    10,000 parts; never below S3's 5 MiB minimum."""
    if size < 1:
        raise ValueError("a file uploaded in parts has at least one byte")
    part = max(MIN_PART_SIZE, preferred_part_size, -(-size // MAX_PARTS))
    part = -(-part // MIB) * MIB
    if part > MAX_PART_SIZE:
        raise ValueError(f"{size} bytes cannot be uploaded in {MAX_PARTS} parts of at most {MAX_PART_SIZE} bytes")
    return PartPlan(size, part)
