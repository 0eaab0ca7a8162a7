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
        uint8 quorum; // validator attestations a round's proposal needs (0: the aggregator finalizes directly)
        uint8 validatorCount;
        uint96 bond; // bond required of validators and proposers
        // slots 6-7
        bytes32 modelSpecHash;
        bytes32 latestModelDigest;
        // slot 8
        uint128 totalBonded;
        uint128 stakePerSample; // read by revealUpdate: stake each claimed sample needs (0: claims unbonded)
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

    /// @dev A round's proposal on a task with validators. Every vote reads and writes only `votes`.
    struct ProposalData {
        bytes32 proposalHash;
        ProposalVotes votes;
        address proposer;
    }

    /// @dev The one word a vote touches: the proposal's state and a copy of the task's rules for it.
    struct ProposalVotes {
        uint40 deadline; // 0: no live proposal (none yet, rejected or finalized)
        uint8 nonce;
        uint8 attestations;
        uint8 disputes;
        uint32 attestedBy;
        uint32 disputedBy;
        uint8 quorum; // k when proposed
        uint8 disputeQuorum; // m - k + 1 when proposed
        uint96 bond; // the task's bond when proposed
    }

    /// @dev An account's bond on a task and its place in the task's validator set (index + 1; 0 = not a validator).
    struct Bond {
        uint96 amount;
        uint8 slot;
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
    mapping(uint256 taskId => mapping(uint256 round => ProposalData)) internal _proposals;
    mapping(uint256 taskId => mapping(address account => Bond)) internal _bonds;
    mapping(uint256 taskId => address[]) internal _validatorLists;
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

    /// @dev Replace the task's validator set (Validation); createTask calls it with the task's first set.
    function _setValidators(uint256 taskId, TaskData storage t, ValidatorSet calldata v) internal virtual;

    /// @dev The checks a round result must pass to be proposed or finalized: a non-zero model digest, a claimable
    ///      payout root, the revealed evaluation data matching the round's commitment, and a total within the
    ///      round's budget and the task's pool.
    function _checkResult(uint256 taskId, uint256 round, TaskData storage t, RoundData storage r, Finalization calldata f)
        internal
        view
    {
        _checkCid(f.newModelCid);
        _checkCid(f.reportCid);
        _checkCid(f.evalCid);
        if (f.newModelDigest == bytes32(0)) revert ZeroDigest();
        if (f.payoutRoot == bytes32(0) && f.payoutTotal != 0) revert ZeroDigest(); // unclaimable
        bytes32 revealed = keccak256(bytes(f.evalCid));
        if (revealed != r.evalCommitment) revert EvalDataMismatch(taskId, round, r.evalCommitment, revealed);
        uint256 total = f.payoutTotal;
        if (total > t.rewardPerRound) revert PayoutExceedsBudget(taskId, total, t.rewardPerRound);
        if (total > t.pool) revert PayoutExceedsPool(taskId, total, t.pool);
    }

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
