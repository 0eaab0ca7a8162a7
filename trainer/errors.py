"""Errors of the trainer node: one base class, one subclass per concern."""

from __future__ import annotations


class TrainerError(RuntimeError):
    """Base of every trainer failure."""


class SignerUnavailable(TrainerError):
    """No signing account could be taken (e.g. every keystore of the directory is locked by another replica)."""


class CheckpointError(TrainerError):
    """The local checkpoint is unreadable or belongs to another chain, contract, task or account."""


class RegistrationError(TrainerError):
    """The trainer cannot be registered on the task (balance too low, unstake pending, task closed)."""


class ModelFetchError(TrainerError):
    """The round's base model could not be fetched, verified or decoded."""


class ModelSpecMismatch(TrainerError):
    """No model spec known to this trainer hashes to the task's on-chain model spec hash."""


class RewardError(TrainerError):
    """A round's report or payout tree is unavailable or inconsistent with the chain."""


class StopRequested(TrainerError):
    """SIGTERM/SIGINT arrived: the current step ends and the node stops."""
