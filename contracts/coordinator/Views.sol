// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";
import {CoordinatorStorage} from "./CoordinatorStorage.sol";
import {ReputationBatch} from "./ReputationBatch.sol";
import {Rounds} from "./Rounds.sol";

/// @title Views
/// @notice Read access to tasks, rounds, trainers, commitments, reputations, claims and slashes, in the
///         interface's struct shapes (storage is packed differently, see CoordinatorStorage).
abstract contract Views is Rounds {
    /// @inheritdoc IFLCoordinator
    function taskCount() external view returns (uint256) {
        return _taskCount;
    }

    /// @inheritdoc IFLCoordinator
    function getTask(uint256 taskId) external view returns (Task memory task) {
        TaskData storage t = _tasks[taskId];
        task.sponsor = t.sponsor;
        task.token = t.token;
        task.rewardPerRound = t.rewardPerRound;
        task.minStake = t.minStake;
        task.pool = t.pool;
        task.owed = t.owed;
        task.totalStaked = t.totalStaked;
        task.commitWindowSeconds = t.commitWindowSeconds;
        task.revealWindowSeconds = t.revealWindowSeconds;
        task.finalizeTimeoutSeconds = t.finalizeTimeoutSeconds;
        task.unstakeCooldownSeconds = t.unstakeCooldownSeconds;
        task.claimWindowSeconds = t.claimWindowSeconds;
        task.slashWindowSeconds = t.slashWindowSeconds;
        task.maxSlashBps = t.maxSlashBps;
        task.maxTotalSlashBps = t.maxTotalSlashBps;
        task.currentRound = t.currentRound;
        task.closeRequested = t.closeRequested;
        task.closed = t.closed;
        task.modelSpecHash = t.modelSpecHash;
        task.latestModelDigest = t.latestModelDigest;
        task.stakePerSample = t.stakePerSample;
    }

    /// @inheritdoc IFLCoordinator
    function isAggregator(uint256 taskId, address account) external view returns (bool) {
        return _aggregators[taskId][account];
    }

    /// @inheritdoc IFLCoordinator
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
        result.commitDeadline = r.commitDeadline;
        result.revealDeadline = r.revealDeadline;
        result.finalizedAt = r.finalizedAt;
        result.swept = r.swept;
    }

    /// @inheritdoc IFLCoordinator
    function getValidators(uint256 taskId) external view returns (ValidatorSet memory result) {
        TaskData storage t = _tasks[taskId];
        result.validators = _validatorLists[taskId];
        result.quorum = t.quorum;
        result.bond = t.bond;
    }

    /// @inheritdoc IFLCoordinator
    function getProposal(uint256 taskId, uint256 round) external view returns (Proposal memory result) {
        ProposalData storage p = _proposals[taskId][round];
        ProposalVotes memory v = p.votes;
        result.proposalHash = p.proposalHash;
        result.proposer = p.proposer;
        result.deadline = v.deadline;
        result.nonce = v.nonce;
        result.attestations = v.attestations;
        result.disputes = v.disputes;
        result.attestedBy = v.attestedBy;
        result.disputedBy = v.disputedBy;
    }

    /// @inheritdoc IFLCoordinator
    function bondOf(uint256 taskId, address account) external view returns (uint256) {
        return _bonds[taskId][account].amount;
    }

    /// @inheritdoc IFLCoordinator
    function roundStatus(uint256 taskId, uint256 round) external view returns (RoundStatus) {
        return _status(_tasks[taskId], _rounds[taskId][round]);
    }

    /// @inheritdoc IFLCoordinator
    function getTrainer(uint256 taskId, address trainer) external view returns (Trainer memory result) {
        result = _trainers[taskId][trainer];
        SlashBook storage book = _slashBooks[taskId][trainer];
        result.deposited = book.deposited;
        result.slashed = book.slashed;
    }

    /// @inheritdoc IFLCoordinator
    function updateCommitment(uint256 taskId, uint256 round, address trainer, bytes32 updateDigest, bytes32 salt)
        external
        view
        returns (bytes32)
    {
        return _commitmentOf(taskId, round, trainer, updateDigest, salt);
    }

    /// @inheritdoc IFLCoordinator
    function getCommitment(uint256 taskId, uint256 round, address trainer)
        external
        view
        returns (bytes32 commitment, bool revealed)
    {
        uint256 word = _participations[taskId][round][trainer].word;
        return (bytes32(word & ~_FLAGS), word & _REVEALED != 0);
    }

    /// @inheritdoc IFLCoordinator
    function getReputation(uint256 taskId, address trainer) external view returns (Reputation memory) {
        return ReputationBatch.unpack(_reputationWords[taskId][trainer].word);
    }

    /// @inheritdoc IFLCoordinator
    function isClaimed(uint256 taskId, uint256 round, address account) external view returns (bool) {
        return _participations[taskId][round][account].word & _CLAIMED != 0;
    }

    /// @inheritdoc IFLCoordinator
    function isSlashed(uint256 taskId, uint256 round, address trainer) external view returns (bool) {
        return _participations[taskId][round][trainer].word & _SLASHED != 0;
    }

    /// @inheritdoc IFLCoordinator
    function activeTime() external view returns (uint256) {
        return _activeNow();
    }
}
