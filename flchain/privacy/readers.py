"""What a node reading a task's updates does with the bytes it fetched: open the envelope, or take them as they are.

A clear-text task (no readers in its card) passes the bytes through to the codec. A private task requires every
update to be an envelope addressed to exactly the task's readers and opens it with this node's reader key; every
failure is an `EnvelopeError` whose `reason` the report records (the submission then counts as not revealed).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from flchain.privacy.envelope import is_envelope, open_with_key, parse_envelope, public_bytes
from flchain.privacy.errors import MalformedEnvelope, NotAReader, NotSealed


class WrongReaders(MalformedEnvelope):
    """The envelope is addressed to other keys than the task's readers (some reader left out, or strangers)."""

    reason = "wrong_readers"


@dataclass(frozen=True, eq=False)
class ReadPolicy:
    """The task's reader keys (empty: clear-text task) and this node's private reader key, if it is one."""

    readers: tuple[bytes, ...] = ()
    key: X25519PrivateKey | None = None

    @property
    def private(self) -> bool:
        return bool(self.readers)

    @property
    def is_reader(self) -> bool:
        return self.key is not None and public_bytes(self.key.public_key()) in self.readers

    def check_addressed(self, data: bytes, max_bytes: int | None = None) -> None:
        """What anyone can check without a key: the bytes are an envelope for exactly the task's readers."""
        if not is_envelope(data):
            raise NotSealed("the task's updates must be sealed for its readers; this one is clear text")
        envelope = parse_envelope(data, max_bytes=max_bytes)
        if set(envelope.readers) != set(self.readers):
            raise WrongReaders(
                f"sealed for {len(envelope.readers)} key(s) that are not exactly the task's {len(self.readers)} readers"
            )

    def frame_of(self, data: bytes, max_bytes: int | None = None) -> bytes:
        """The codec frame inside `data` (the bytes themselves for a clear-text task)."""
        return self.open(data, max_bytes)[0]

    def open(self, data: bytes, max_bytes: int | None = None) -> tuple[bytes, bytes]:
        """The codec frame inside `data` and the envelope's content key (empty for a clear-text task)."""
        if not self.private:
            return data, b""
        self.check_addressed(data, max_bytes)
        if self.key is None:
            raise NotAReader("this node holds no reader key of the task")
        return open_with_key(data, self.key, max_bytes=max_bytes)


CLEAR_TEXT = ReadPolicy()
