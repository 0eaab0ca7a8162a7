// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";

/// @title CoordinatorStorage
/// @notice Shared state of the coordinator modules (TaskBook, Staking, Rounds, Payouts, Views) and the helpers
///         they all use: task lookup, the aggregator check, the round status, the active clock and the per-round
///         participation word.
/// @dev Storage is packed for the hot paths; the interface structs are assembled by the views.
///      - `TaskData` slot 0 holds everything commitUpdate and revealUpdate read (minStake, currentRound and its two
///        deadlines), so each touches one task slot; slot 1 holds the token and the claim window (claims), slot 2
///        pool and owed (finalization, claims, sweeps).
///      - A trainer's participation in a round is one word: the commitment's upper 253 bits and three flags
///        (revealed, claimed, slashed). A commit writes it once; reveal, claim and slash flip a bit in it, so
///        neither a claim nor a slash pays for a fresh slot, whatever its leaf index.
///      - The active clock (block time minus paused time) is read by windows after finalization only when the
///        wall clock alone cannot decide, so an in-window claim or slash never reads it.
///      The reentrancy guard is OpenZeppelin's transient-storage variant (EIP-1153, evmVersion cancun).
abstract contract CoordinatorStorage is IFLCoordinator, Pausable, ReentrancyGuardTransient {
    /// @notice Largest per-round slash cap a task may choose, in basis points of a stake.
    uint16 public constant MAX_SLASH_BPS = 5000;
    /// @notice Basis-point denominator (100%).
    uint256 public constant BPS_DENOMINATOR = 10_000;
    /// @notice Fixed-point scale of reputation values (1e6 = 1.0).
    uint256 public constant REPUTATION_SCALE = 1e6;
    /// @notice Longest CID (or evidence string) accepted, in bytes.
    uint256 public constant MAX_CID_BYTES = 100;

    /// @dev Flags in the low bits of a participation word.
    uint256 internal constant _REVEALED = 1;
    uint256 internal constant _CLAIMED = 2;
    uint256 internal constant _SLASHED = 4;
    uint256 internal constant _FLAGS = 7;

    struct TaskData {
        // slot 0: read by commitUpdate, revealUpdate, openRound and stake
        uint128 minStake;
        uint32 currentRound;
        uint40 commitDeadline; // of currentRound
        uint40 revealDeadline; // of currentRound
        bool closed;
        bool closeRequested;
        // slot 1: read by claims
        address token; // non-zero for every created task: the existence check
        uint32 finalizeTimeoutSeconds;
        uint32 unstakeCooldownSeconds;
        uint32 claimWindowSeconds;
        // slot 2
        uint128 pool;
        uint128 owed;
        // slot 3
        uint128 rewardPerRound;
        uint128 totalStaked;
        // slot 4
        address sponsor;
        uint32 commitWindowSeconds;
        uint32 revealWindowSeconds;
        uint32 slashWindowSeconds;
        // slot 5
        uint16 maxSlashBps;
        uint16 maxTotalSlashBps;
        uint32 lastFinalizedRound;
        // slots 6-7
        bytes32 modelSpecHash;
        bytes32 latestModelDigest;
    }

    struct RoundData {
        bytes32 baseModelDigest;
        bytes32 evalCommitment;
        bytes32 newModelDigest;
        bytes32 reportDigest;
        bytes32 payoutRoot;
        uint128 payoutTotal;
        uint128 claimedTotal;
        // last slot
        uint40 openedAt;
        uint40 commitDeadline;
        uint40 revealDeadline;
        uint40 finalizedAt; // wall clock
        uint40 finalizedActive; // active clock (see activeTime)
        uint32 prevFinalized; // the task's last finalized round when this one opened
        bool swept;
    }

    /// @dev A participation word; a struct so that a storage pointer computes its slot once.
    struct Participation {
        uint256 word;
    }

    /// @dev A trainer's running totals behind the cumulative slash cap.
    struct SlashBook {
        uint128 deposited;
        uint128 slashed;
    }

    /// @dev A Reputation packed into one word by ReputationBatch, so recording one costs a single SSTORE.
    struct ReputationWord {
        uint256 word;
    }

    /// @dev Paused time bookkeeping behind the active clock.
    struct PauseClock {
        uint40 pausedSince; // 0 when not paused
        uint40 pausedTotal; // seconds paused before pausedSince
    }

    uint256 internal _taskCount;
    PauseClock internal _pauseClock;
    mapping(uint256 taskId => TaskData) internal _tasks;
    mapping(uint256 taskId => mapping(address account => bool)) internal _aggregators;
    mapping(uint256 taskId => mapping(uint256 round => RoundData)) internal _rounds;
    mapping(uint256 taskId => mapping(address trainer => Trainer)) internal _trainers;
    mapping(uint256 taskId => mapping(address trainer => SlashBook)) internal _slashBooks;
    mapping(uint256 taskId => mapping(uint256 round => mapping(address trainer => Participation))) internal
        _participations;
    // slither-disable-next-line uninitialized-state (written in Rounds.recordReputations through a storage pointer)
    mapping(uint256 taskId => mapping(address trainer => ReputationWord)) internal _reputationWords;

    // ------------------------------------------------------------------ task and role checks

    /// @dev The task's storage; reverts TaskNotFound for an id that was never created.
    function _existingTask(uint256 taskId) internal view returns (TaskData storage t) {
        t = _tasks[taskId];
        if (t.token == address(0)) revert TaskNotFound(taskId);
    }

    /// @dev Reverts unless the caller is an aggregator of an existing task.
    function _requireAggregator(uint256 taskId) internal view {
        if (!_aggregators[taskId][msg.sender]) {
            _existingTask(taskId);
            revert NotAggregator(taskId, msg.sender);
        }
    }

    /// @dev Close the task now: return its pool to the sponsor (TaskBook).
    function _completeClose(uint256 taskId, TaskData storage t) internal virtual returns (uint256 reclaimed);

    /// @dev Reverts CidTooLong for a string longer than MAX_CID_BYTES.
    function _checkCid(string calldata cid) internal pure {
        if (bytes(cid).length > MAX_CID_BYTES) revert CidTooLong(bytes(cid).length, MAX_CID_BYTES);
    }

    // ------------------------------------------------------------------ round status and clocks

    /// @dev A round's lifecycle status at the current block time.
    function _status(TaskData storage t, RoundData storage r) internal view returns (RoundStatus) {
        if (r.openedAt == 0) return RoundStatus.None;
        if (r.finalizedAt != 0) return RoundStatus.Finalized;
        if (block.timestamp < r.commitDeadline) return RoundStatus.Committing;
        uint256 revealDeadline = r.revealDeadline;
        if (block.timestamp < revealDeadline) return RoundStatus.Revealing;
        if (block.timestamp < revealDeadline + t.finalizeTimeoutSeconds) return RoundStatus.Closed;
        return RoundStatus.Expired;
    }

    /// @dev Whether a round is settled for stakes and closing: Finalized or Expired (or never opened).
    function _isSettled(RoundStatus s) internal pure returns (bool) {
        return s == RoundStatus.None || s == RoundStatus.Finalized || s == RoundStatus.Expired;
    }

    /// @dev The active clock: block time minus every second spent paused (it stands still during a pause).
    function _activeNow() internal view returns (uint256) {
        PauseClock memory c = _pauseClock;
        uint256 at = c.pausedSince != 0 ? c.pausedSince : block.timestamp;
        return at - c.pausedTotal;
    }

    /// @dev Whether a finalized round's window of `windowSeconds` is still running on the active clock. The wall
    ///      clock decides without the pause clock whenever less than the window has passed since finalization.
    function _inWindow(RoundData storage r, uint256 windowSeconds) internal view returns (bool) {
        if (block.timestamp < uint256(r.finalizedAt) + windowSeconds) return true;
        return _activeNow() < uint256(r.finalizedActive) + windowSeconds;
    }
}
