"""Errors of sealing and opening updates and of the privacy options; one base class, `PrivacyError`."""

from __future__ import annotations


class PrivacyError(ValueError):
    """Base of every error raised by `flchain.privacy`."""


class EnvelopeError(PrivacyError):
    """A sealed update cannot be opened; `reason` is the short machine-readable cause recorded in reports."""

    reason = "malformed"


class MalformedEnvelope(EnvelopeError):
    """The bytes do not parse as an envelope (magic, version, suite, lengths, reader list)."""

    reason = "malformed"


class NotAReader(EnvelopeError):
    """The envelope holds no content key for this reader's public key: it was sealed for others."""

    reason = "not_a_reader"


class EnvelopeTampered(EnvelopeError):
    """Authentication failed: a byte of the header, a wrapped key or the ciphertext was changed (or forged)."""

    reason = "tampered"


class PlaintextDigestMismatch(EnvelopeError):
    """The decrypted update does not hash to the plaintext digest the envelope (and so the commitment) binds."""

    reason = "plaintext_digest_mismatch"


class NotSealed(EnvelopeError):
    """The task requires sealed updates and these bytes are not an envelope (a clear-text update)."""

    reason = "not_sealed"


class ReaderKeyError(PrivacyError):
    """A reader key cannot be loaded or parsed (never carries the key material in its message)."""


class DpConfigError(PrivacyError):
    """Inconsistent differential-privacy parameters."""
