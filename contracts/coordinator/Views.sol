// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {CoordinatorStorage} from "./CoordinatorStorage.sol";
import {ReputationBatch} from "./ReputationBatch.sol";

/// @title Views
/// @notice Read access to tasks, rounds, trainers, submissions, reputations, claims and slashes, in the
///         interface's struct shapes (storage is packed differently, see CoordinatorStorage).
abstract contract Views is CoordinatorStorage {
    /// @notice Number of tasks created so far (the last task id).
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @notice A task's stored state (all zero for an unknown id).
    function getTask(uint256 taskId) external view returns (Task memory task) {
        TaskData storage t = _tasks[taskId];
        task.sponsor = t.sponsor;
        task.token = t.token;
        task.rewardPerRound = t.rewardPerRound;
        task.minStake = t.minStake;
        task.pool = t.pool;
        task.owed = t.owed;
        task.totalStaked = t.totalStaked;
        task.windowSeconds = t.windowSeconds;
        task.finalizeTimeoutSeconds = t.finalizeTimeoutSeconds;
        task.unstakeCooldownSeconds = t.unstakeCooldownSeconds;
        task.maxSlashBps = t.maxSlashBps;
        task.currentRound = t.currentRound;
        task.closed = t.closed;
        task.modelSpecHash = t.modelSpecHash;
        task.latestModelDigest = t.latestModelDigest;
    }

    /// @notice Whether `account` is an aggregator of the task.
    function isAggregator(uint256 taskId, address account) external view returns (bool) {
        return _aggregators[taskId][account];
    }

    /// @notice A round's stored state (all zero for a round never opened).
    function getRound(uint256 taskId, uint256 round) external view returns (Round memory result) {
        RoundData storage r = _rounds[taskId][round];
        result.baseModelDigest = r.baseModelDigest;
        result.evalCommitment = r.evalCommitment;
        result.newModelDigest = r.newModelDigest;
        result.reportDigest = r.reportDigest;
        result.payoutRoot = r.payoutRoot;
        result.payoutTotal = r.payoutTotal;
        result.claimedTotal = r.claimedTotal;
        result.openedAt = r.openedAt;
        result.windowEnd = r.windowEnd;
        result.finalizedAt = r.finalizedAt;
    }

    /// @notice A round's lifecycle status at the current block time.
    function roundStatus(uint256 taskId, uint256 round) external view returns (RoundStatus) {
        return _status(_tasks[taskId], _rounds[taskId][round]);
    }

    /// @notice A trainer's stake and lock state in a task.
    function getTrainer(uint256 taskId, address trainer) external view returns (Trainer memory) {
        return _trainers[taskId][trainer];
    }

    /// @notice The digest a trainer committed in a round (zero when none).
    function getSubmission(uint256 taskId, uint256 round, address trainer) external view returns (bytes32) {
        return _submissions[taskId][round][trainer].digest;
    }

    /// @notice A trainer's last recorded reputation in a task.
    function getReputation(uint256 taskId, address trainer) external view returns (Reputation memory) {
        return ReputationBatch.unpack(_reputationWords[taskId][trainer].word);
    }

    /// @notice Whether payout leaf `index` of a round has been claimed.
    function isClaimed(uint256 taskId, uint256 round, uint256 index) external view returns (bool) {
        return _isClaimed(taskId, round, index);
    }

    /// @notice Whether a trainer was slashed for a round.
    function isSlashed(uint256 taskId, uint256 round, address trainer) external view returns (bool) {
        return _slashed[taskId][round][trainer];
    }
}
