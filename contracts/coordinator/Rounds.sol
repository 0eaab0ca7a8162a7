// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {CoordinatorStorage} from "./CoordinatorStorage.sol";
import {ReputationBatch} from "./ReputationBatch.sol";

/// @title Rounds
/// @notice The round lifecycle: an aggregator opens a round on the current global model with a commitment to its
///         evaluation data, registered trainers commit one update each during the window, the aggregator finalizes
///         within the timeout (new model, score report, revealed evaluation data, payout root and total) and
///         records the participants' reputations. A round not finalized in time expires.
abstract contract Rounds is CoordinatorStorage {
    using SafeCast for uint256;

    /// @notice Open round `round` (= currentRound + 1) on the current global model.
    /// @dev Aggregator only (NotAggregator). Reverts TaskIsClosed; WrongRound unless round = currentRound + 1;
    ///      RoundInProgress unless the previous round is Finalized or Expired; ModelMismatch unless
    ///      `baseModelDigest` is the task's latest model digest; ZeroDigest for a zero evalCommitment.
    /// @param evalCommitment keccak256(bytes(evalCid)) of the round's evaluation data, revealed at finalization.
    function openRound(
        uint256 taskId,
        uint256 round,
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        bytes32 evalCommitment
    ) external whenNotPaused {
        _requireAggregator(taskId);
        TaskData storage t = _tasks[taskId];
        if (t.closed) revert TaskIsClosed(taskId);
        uint256 current = t.currentRound;
        if (round != current + 1) revert WrongRound(taskId, current + 1, round);
        if (!_isSettled(_status(t, _rounds[taskId][current]))) revert RoundInProgress(taskId, current);
        bytes32 latest = t.latestModelDigest;
        if (baseModelDigest != latest) revert ModelMismatch(taskId, latest, baseModelDigest);
        if (evalCommitment == bytes32(0)) revert ZeroDigest();
        uint40 windowEnd = (block.timestamp + t.windowSeconds).toUint40();
        t.currentRound = round.toUint32();
        t.currentWindowEnd = windowEnd;
        RoundData storage r = _rounds[taskId][round];
        r.baseModelDigest = baseModelDigest;
        r.evalCommitment = evalCommitment;
        r.openedAt = uint40(block.timestamp);
        r.windowEnd = windowEnd;
        emit RoundOpened(taskId, round, baseModelDigest, baseModelCid, evalCommitment, windowEnd);
    }

    /// @notice Commit one update to the open round: its SHA-256 digest (stored), CID and sample count (event).
    /// @dev Reverts ZeroDigest; WrongRound unless `round` is the current round; WindowClosed after the window;
    ///      NotRegistered unless the caller's stake is >= minStake with no unstake pending; AlreadySubmitted.
    function submitUpdate(uint256 taskId, uint256 round, bytes32 digest, string calldata cid, uint64 numSamples)
        external
        whenNotPaused
    {
        if (digest == bytes32(0)) revert ZeroDigest();
        TaskData storage t = _tasks[taskId];
        uint256 current = t.currentRound;
        if (round != current || current == 0) {
            _existingTask(taskId);
            revert WrongRound(taskId, current, round);
        }
        uint256 windowEnd = t.currentWindowEnd;
        if (block.timestamp >= windowEnd) revert WindowClosed(taskId, round, windowEnd);
        Trainer storage tr = _trainers[taskId][msg.sender];
        if (tr.stake < t.minStake || tr.unstakeRequestedAt != 0) revert NotRegistered(taskId, msg.sender);
        Submission storage submission = _submissions[taskId][round][msg.sender];
        if (submission.digest != bytes32(0)) revert AlreadySubmitted(taskId, round, msg.sender);
        submission.digest = digest;
        tr.lastRound = uint32(round);
        emit UpdateSubmitted(taskId, round, msg.sender, digest, cid, numSamples);
    }

    /// @notice Finalize a round whose window has ended: new model, score report, revealed evaluation data and
    ///         the payout root; moves payoutTotal from the pool to the owed balance.
    /// @dev Aggregator only. Reverts WrongRound (never opened), WindowStillOpen, AlreadyFinalized, RoundExpired
    ///      (after windowEnd + finalizeTimeoutSeconds), ZeroDigest (zero new model digest, or a zero payout root with
    ///      a non-zero payout total), EvalDataMismatch,
    ///      PayoutExceedsBudget (> rewardPerRound), PayoutExceedsPool. Gas does not depend on the participants.
    function finalizeRound(uint256 taskId, uint256 round, Finalization calldata f) external whenNotPaused {
        _requireAggregator(taskId);
        TaskData storage t = _tasks[taskId];
        RoundData storage r = _rounds[taskId][round];
        RoundStatus s = _status(t, r);
        if (s != RoundStatus.Closed) _revertNotFinalizable(taskId, round, s, t.currentRound, r.windowEnd);
        if (f.newModelDigest == bytes32(0)) revert ZeroDigest();
        if (f.payoutRoot == bytes32(0) && f.payoutTotal != 0) revert ZeroDigest(); // unclaimable: owed forever
        bytes32 revealed = keccak256(bytes(f.evalCid));
        if (revealed != r.evalCommitment) revert EvalDataMismatch(taskId, round, r.evalCommitment, revealed);
        uint256 total = f.payoutTotal;
        if (total > t.rewardPerRound) revert PayoutExceedsBudget(taskId, total, t.rewardPerRound);
        uint256 pool = t.pool;
        if (total > pool) revert PayoutExceedsPool(taskId, total, pool);
        t.pool = uint128(pool - total);
        t.owed += uint128(total);
        t.latestModelDigest = f.newModelDigest;
        r.newModelDigest = f.newModelDigest;
        r.reportDigest = f.reportDigest;
        r.payoutRoot = f.payoutRoot;
        r.payoutTotal = uint128(total);
        r.finalizedAt = uint40(block.timestamp);
        emit RoundFinalized(taskId, round, f);
    }

    /// @notice Record reputations of a finalized round's participants; call in batches of any size.
    /// @dev Aggregator only. Reverts LengthMismatch, RoundNotFinalized, WrongRound when an entry's `round` field is
    ///      not `round` (stored and emitted reputations carry the round they were recorded for), and
    ///      ReputationAlreadyRecorded when a trainer's reputation was already recorded for this round or a later one.
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
        for (uint256 i = 0; i < count; ++i) {
            (address trainer, uint256 word) = ReputationBatch.readEntry(trainers, reputations, i);
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

    /// @dev The revert of finalizeRound for a round that is not awaiting finalization.
    function _revertNotFinalizable(uint256 taskId, uint256 round, RoundStatus s, uint256 current, uint256 windowEnd)
        private
        pure
    {
        if (s == RoundStatus.None) revert WrongRound(taskId, current, round);
        if (s == RoundStatus.Open) revert WindowStillOpen(taskId, round, windowEnd);
        if (s == RoundStatus.Finalized) revert AlreadyFinalized(taskId, round);
        revert RoundExpired(taskId, round);
    }
}
