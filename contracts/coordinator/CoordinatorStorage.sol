// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {BitMaps} from "@openzeppelin/contracts/utils/structs/BitMaps.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";

/// @title CoordinatorStorage
/// @notice Shared state of the coordinator modules (TaskBook, Staking, Rounds, Payouts, Views) and the helpers
///         they all use: task lookup, the aggregator check and the round status.
/// @dev Storage is packed for the hot paths; the interface structs are assembled by the views.
///      - `TaskData` slot 0 holds everything submitUpdate reads (minStake, currentRound and its window end), so a
///        submission touches one task slot; slot 2 holds pool and owed, which finalization and claims update.
///      - `RoundData`'s last slot holds the three timestamps and the claim bits of payout leaves 0..135. That slot
///        is already non-zero when the first claim of a round lands, so no claim pays for a fresh storage slot
///        unless its leaf index is >= 136 (those bits live in an OpenZeppelin BitMap).
///      - `Trainer` (interface struct) is one slot; a Reputation is one hand-packed word (ReputationBatch).
///      The reentrancy guard is OpenZeppelin's transient-storage variant (EIP-1153, evmVersion cancun).
abstract contract CoordinatorStorage is IFLCoordinator, Pausable, ReentrancyGuardTransient {
    using BitMaps for BitMaps.BitMap;

    /// @notice Largest slash cap a task may choose, in basis points of a stake.
    uint16 public constant MAX_SLASH_BPS = 5000;
    /// @notice Basis-point denominator (100%).
    uint256 public constant BPS_DENOMINATOR = 10_000;
    /// @notice Fixed-point scale of reputation values (1e6 = 1.0).
    uint256 public constant REPUTATION_SCALE = 1e6;

    /// @dev Number of payout leaves whose claim bits are packed next to a round's timestamps.
    uint256 internal constant _PACKED_CLAIM_BITS = 136;

    struct TaskData {
        // slot 0: read by submitUpdate, openRound and stake
        uint128 minStake;
        uint32 currentRound;
        uint40 currentWindowEnd; // windowEnd of currentRound, copied here so submitUpdate reads one slot
        uint32 windowSeconds;
        uint16 maxSlashBps;
        bool closed;
        // slot 1
        address token; // non-zero for every created task: the existence check
        uint32 finalizeTimeoutSeconds;
        uint32 unstakeCooldownSeconds;
        // slot 2
        uint128 pool;
        uint128 owed;
        // slot 3
        uint128 rewardPerRound;
        uint128 totalStaked;
        // slots 4-6
        address sponsor;
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
        // last slot: timestamps and the claim bits of leaves 0..135
        uint40 openedAt;
        uint40 windowEnd;
        uint40 finalizedAt;
        uint136 claimedLow;
    }

    /// @dev A committed update digest; a struct so that a storage pointer computes its slot once.
    struct Submission {
        bytes32 digest;
    }

    /// @dev A Reputation packed into one word by ReputationBatch, so recording one costs a single SSTORE.
    struct ReputationWord {
        uint256 word;
    }

    uint256 internal _taskCount;
    mapping(uint256 taskId => TaskData) internal _tasks;
    mapping(uint256 taskId => mapping(address account => bool)) internal _aggregators;
    mapping(uint256 taskId => mapping(uint256 round => RoundData)) internal _rounds;
    mapping(uint256 taskId => mapping(address trainer => Trainer)) internal _trainers;
    mapping(uint256 taskId => mapping(uint256 round => mapping(address trainer => Submission))) internal _submissions;
    mapping(uint256 taskId => mapping(address trainer => ReputationWord)) internal _reputationWords;
    mapping(uint256 taskId => mapping(uint256 round => BitMaps.BitMap)) internal _claimedHigh;
    mapping(uint256 taskId => mapping(uint256 round => mapping(address trainer => bool))) internal _slashed;

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

    // ------------------------------------------------------------------ round status

    /// @dev A round's lifecycle status at the current block time.
    function _status(TaskData storage t, RoundData storage r) internal view returns (RoundStatus) {
        uint256 openedAt = r.openedAt;
        if (openedAt == 0) return RoundStatus.None;
        if (r.finalizedAt != 0) return RoundStatus.Finalized;
        uint256 windowEnd = r.windowEnd;
        if (block.timestamp < windowEnd) return RoundStatus.Open;
        if (block.timestamp < windowEnd + t.finalizeTimeoutSeconds) return RoundStatus.Closed;
        return RoundStatus.Expired;
    }

    /// @dev Whether a round is settled for stakes and closing: Finalized or Expired (or never opened).
    function _isSettled(RoundStatus s) internal pure returns (bool) {
        return s != RoundStatus.Open && s != RoundStatus.Closed;
    }

    // ------------------------------------------------------------------ claim bits

    /// @dev Whether payout leaf `index` of a round has been claimed.
    function _isClaimed(uint256 taskId, uint256 round, uint256 index) internal view returns (bool) {
        if (index < _PACKED_CLAIM_BITS) {
            return (_rounds[taskId][round].claimedLow >> index) & 1 == 1;
        }
        return _claimedHigh[taskId][round].get(index);
    }

    /// @dev Mark payout leaf `index` of a round claimed.
    function _setClaimed(uint256 taskId, uint256 round, uint256 index) internal {
        if (index < _PACKED_CLAIM_BITS) {
            RoundData storage r = _rounds[taskId][round];
            r.claimedLow = r.claimedLow | uint136(1 << index);
        } else {
            _claimedHigh[taskId][round].set(index);
        }
    }
}
