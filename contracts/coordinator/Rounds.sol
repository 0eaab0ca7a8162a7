// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";
import {CoordinatorStorage} from "./CoordinatorStorage.sol";
import {ReputationBatch} from "./ReputationBatch.sol";

/// @title Rounds
/// @notice The round lifecycle: an aggregator opens a round on the current global model with a commitment to its
///         evaluation data; during the commit phase trainers post commitments bound to themselves, during the
///         reveal phase they publish and reveal the committed updates; the round's result (new model, score report,
///         revealed evaluation data, payout root and total) is finalized within the timeout — by the aggregator
///         directly on a task without validators, by anyone once a quorum of validators attested it otherwise (see
///         Validation) — and the aggregator records the revealers' reputations. A round not finalized in time
///         expires.
abstract contract Rounds is CoordinatorStorage {
    using SafeCast for uint256;

    /// @inheritdoc IFLCoordinator
    function openRound(
        uint256 taskId,
        uint256 round,
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        bytes32 evalCommitment
    ) external whenNotPaused {
        _requireAggregator(taskId);
        _checkCid(baseModelCid);
        TaskData storage t = _tasks[taskId];
        if (t.closed) revert TaskIsClosed(taskId);
        if (t.closeRequested) revert CloseIsRequested(taskId);
        uint256 current = t.currentRound;
        if (round != current + 1) revert WrongRound(taskId, current + 1, round);
        if (!_isSettled(_status(t, _rounds[taskId][current]))) revert RoundInProgress(taskId, current);
        bytes32 latest = t.latestModelDigest;
        if (baseModelDigest != latest) revert ModelMismatch(taskId, latest, baseModelDigest);
        if (evalCommitment == bytes32(0)) revert ZeroDigest();
        uint40 commitDeadline = (block.timestamp + t.commitWindowSeconds).toUint40();
        uint40 revealDeadline = (uint256(commitDeadline) + t.revealWindowSeconds).toUint40();
        t.currentRound = round.toUint32();
        t.commitDeadline = commitDeadline;
        t.revealDeadline = revealDeadline;
        RoundData storage r = _rounds[taskId][round];
        r.baseModelDigest = baseModelDigest;
        r.evalCommitment = evalCommitment;
        r.openedAt = uint40(block.timestamp);
        r.commitDeadline = commitDeadline;
        r.revealDeadline = revealDeadline;
        r.prevFinalized = t.lastFinalizedRound;
        emit RoundOpened(taskId, round, baseModelDigest, baseModelCid, evalCommitment, commitDeadline, revealDeadline);
    }

    /// @inheritdoc IFLCoordinator
    function commitUpdate(uint256 taskId, uint256 round, bytes32 commitment) external {
        uint256 word = uint256(commitment) & ~_FLAGS;
        if (word == 0) revert ZeroDigest();
        TaskData storage t = _tasks[taskId];
        _requireCurrent(taskId, t, round);
        if (block.timestamp >= t.commitDeadline) {
            revert WrongPhase(taskId, round, _status(t, _rounds[taskId][round]));
        }
        Participation storage p = _participations[taskId][round][msg.sender];
        if (p.word != 0) revert AlreadyCommitted(taskId, round, msg.sender);
        p.word = word;
        emit UpdateCommitted(taskId, round, msg.sender, commitment);
    }

    /// @inheritdoc IFLCoordinator
    function revealUpdate(
        uint256 taskId,
        uint256 round,
        bytes32 updateDigest,
        bytes32 salt,
        string calldata cid,
        uint64 numSamples
    ) external whenNotPaused {
        if (updateDigest == bytes32(0)) revert ZeroDigest();
        _checkCid(cid);
        TaskData storage t = _tasks[taskId];
        _requireCurrent(taskId, t, round);
        if (block.timestamp < t.commitDeadline || block.timestamp >= t.revealDeadline) {
            revert WrongPhase(taskId, round, _status(t, _rounds[taskId][round]));
        }
        Trainer storage tr = _trainers[taskId][msg.sender];
        if (tr.stake < t.minStake || tr.unstakeRequestedAt != 0) revert NotRegistered(taskId, msg.sender);
        _checkSampleBond(taskId, t.stakePerSample, numSamples, tr.stake);
        Participation storage p = _participations[taskId][round][msg.sender];
        uint256 word = p.word;
        if (word == 0) revert NotCommitted(taskId, round, msg.sender);
        if (word & _REVEALED != 0) revert AlreadyRevealed(taskId, round, msg.sender);
        bytes32 expected = _commitmentOf(taskId, round, msg.sender, updateDigest, salt);
        if ((uint256(expected) ^ word) & ~_FLAGS != 0) revert CommitmentMismatch(taskId, round, msg.sender);
        p.word = word | _REVEALED;
        tr.lastRound = uint32(round);
        emit UpdateRevealed(taskId, round, msg.sender, updateDigest, cid, numSamples);
    }

    /// @inheritdoc IFLCoordinator
    function finalizeRound(uint256 taskId, uint256 round, Finalization calldata f)
        external
        whenNotPaused
        nonReentrant
    {
        TaskData storage t = _tasks[taskId];
        if (t.quorum == 0) _requireAggregator(taskId);
        RoundData storage r = _rounds[taskId][round];
        RoundStatus s = _status(t, r);
        if (s != RoundStatus.Closed) _revertNotFinalizable(taskId, round, s, t.currentRound);
        if (t.quorum != 0) _acceptProposal(taskId, round, f);
        _checkResult(taskId, round, t, r, f);
        uint256 total = f.payoutTotal;
        t.pool -= uint128(total);
        t.owed += uint128(total);
        t.latestModelDigest = f.newModelDigest;
        t.lastFinalizedRound = uint32(round);
        r.newModelDigest = f.newModelDigest;
        r.reportDigest = f.reportDigest;
        r.payoutRoot = f.payoutRoot;
        r.payoutTotal = uint128(total);
        r.finalizedAt = uint40(block.timestamp);
        r.finalizedActive = uint40(_activeNow());
        emit RoundFinalized(taskId, round, f);
        if (t.closeRequested) _completeClose(taskId, t);
    }

    /// @inheritdoc IFLCoordinator
    function recordReputations(
        uint256 taskId,
        uint256 round,
        address[] calldata trainers,
        Reputation[] calldata reputations
    ) external whenNotPaused {
        _requireAggregator(taskId);
        uint256 count = trainers.length;
        if (count != reputations.length) revert LengthMismatch(count, reputations.length);
        if (_rounds[taskId][round].finalizedAt == 0) revert RoundNotFinalized(taskId, round);
        mapping(address => ReputationWord) storage book = _reputationWords[taskId];
        mapping(address => Participation) storage participants = _participations[taskId][round];
        for (uint256 i = 0; i < count; ++i) {
            (address trainer, uint256 word) = ReputationBatch.readEntry(trainers, reputations, i);
            if (participants[trainer].word & _REVEALED == 0) revert NotParticipant(taskId, round, trainer);
            uint256 given = ReputationBatch.roundOf(word);
            if (given != round) revert WrongRound(taskId, round, given);
            ReputationWord storage stored = book[trainer];
            if (ReputationBatch.roundOf(stored.word) >= round) {
                revert ReputationAlreadyRecorded(taskId, round, trainer);
            }
            stored.word = word;
        }
        ReputationBatch.emitRecorded(taskId, round, trainers, reputations);
    }

    /// @dev The commitment hash of updateCommitment.
    function _commitmentOf(uint256 taskId, uint256 round, address trainer, bytes32 updateDigest, bytes32 salt)
        internal
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(block.chainid, address(this), taskId, round, trainer, updateDigest, salt));
    }

    /// @dev On a task with validators: `f` must be the round's live proposal and hold a quorum of attestations.
    ///      Marks the proposal decided, so no vote counts after it.
    function _acceptProposal(uint256 taskId, uint256 round, Finalization calldata f) private {
        ProposalData storage p = _proposals[taskId][round];
        ProposalVotes memory v = p.votes;
        if (v.deadline == 0) revert NoLiveProposal(taskId, round, v.nonce);
        if (v.attestations < v.quorum) revert QuorumNotReached(taskId, round, v.attestations, v.quorum);
        bytes32 given = keccak256(abi.encode(f));
        if (given != p.proposalHash) revert ProposalMismatch(taskId, round, p.proposalHash, given);
        p.votes.deadline = 0;
    }

    /// @dev With a sample bond (`perSample` > 0) a reveal must claim at least one sample and its claim must be
    ///      covered by the trainer's stake; without one (0) any claim passes, unbonded.
    function _checkSampleBond(uint256 taskId, uint256 perSample, uint64 numSamples, uint256 stake) private view {
        if (perSample == 0) return;
        if (numSamples == 0) revert ZeroSamples(taskId, msg.sender);
        uint256 needed = uint256(numSamples) * perSample;
        if (needed > stake) revert SampleClaimUnbonded(taskId, msg.sender, numSamples, needed, stake);
    }

    /// @dev Reverts WrongRound (or TaskNotFound) unless `round` is the task's current round.
    function _requireCurrent(uint256 taskId, TaskData storage t, uint256 round) private view {
        uint256 current = t.currentRound;
        if (round != current || current == 0) {
            _existingTask(taskId);
            revert WrongRound(taskId, current, round);
        }
    }

    /// @dev The revert of finalizeRound for a round that is not awaiting finalization.
    function _revertNotFinalizable(uint256 taskId, uint256 round, RoundStatus s, uint256 current) private pure {
        if (s == RoundStatus.None) revert WrongRound(taskId, current, round);
        if (s == RoundStatus.Finalized) revert AlreadyFinalized(taskId, round);
        if (s == RoundStatus.Expired) revert RoundExpired(taskId, round);
        revert WrongPhase(taskId, round, s);
    }
}
