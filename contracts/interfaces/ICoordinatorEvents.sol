// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICoordinatorTypes} from "./ICoordinatorTypes.sol";

/// @title ICoordinatorEvents
/// @notice Events and custom errors of the flchain coordinator (see IFLCoordinator).
interface ICoordinatorEvents is ICoordinatorTypes {
    // ------------------------------------------------------------------ events

    event TaskCreated(uint256 indexed taskId, address indexed sponsor, address indexed token, TaskParams params);
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount, uint256 poolAfter);
    event CloseRequested(uint256 indexed taskId, address indexed sponsor);
    event TaskClosed(uint256 indexed taskId, address indexed sponsor, uint256 reclaimed);
    event Staked(uint256 indexed taskId, address indexed trainer, uint256 amount, uint256 stakeAfter);
    event UnstakeRequested(uint256 indexed taskId, address indexed trainer, uint256 requestedAt);
    event StakeWithdrawn(uint256 indexed taskId, address indexed trainer, uint256 amount);
    event RoundOpened(
        uint256 indexed taskId,
        uint256 indexed round,
        bytes32 baseModelDigest,
        string baseModelCid,
        bytes32 evalCommitment,
        uint256 commitDeadline,
        uint256 revealDeadline
    );
    event UpdateCommitted(uint256 indexed taskId, uint256 indexed round, address indexed trainer, bytes32 commitment);
    event UpdateRevealed(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed trainer,
        bytes32 updateDigest,
        string cid,
        uint64 numSamples
    );
    event RoundFinalized(uint256 indexed taskId, uint256 indexed round, Finalization finalization);
    event ReputationsRecorded(
        uint256 indexed taskId, uint256 indexed round, address[] trainers, Reputation[] reputations
    );
    event Claimed(uint256 indexed taskId, uint256 indexed round, address indexed account, uint256 index, uint256 amount);
    event RoundSwept(uint256 indexed taskId, uint256 indexed round, address indexed to, uint256 amount);
    event Slashed(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed trainer,
        uint256 amount,
        uint8 reasonCode,
        string evidenceCid
    );
    event ValidatorsSet(
        uint256 indexed taskId, address[] validators, uint8 quorum, uint96 bond, uint256 fromRound
    );
    event BondDeposited(uint256 indexed taskId, address indexed account, uint256 amount, uint256 bondAfter);
    event BondWithdrawn(uint256 indexed taskId, address indexed account, uint256 amount);
    event RoundProposed(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed proposer,
        uint8 nonce,
        bytes32 proposalHash,
        Finalization finalization
    );
    event RoundAttested(
        uint256 indexed taskId, uint256 indexed round, address indexed validator, uint8 nonce, uint8 attestations
    );
    event RoundDisputed(
        uint256 indexed taskId, uint256 indexed round, address indexed validator, uint8 nonce, uint8 disputes
    );
    event ProposalRejected(
        uint256 indexed taskId, uint256 indexed round, address indexed proposer, uint8 nonce, uint256 bondSlashed
    );

    // ------------------------------------------------------------------ errors

    error ZeroAddress();
    error ZeroAmount();
    error NoAggregators();
    error InvalidDuration(uint32 seconds_);
    error SlashCapTooHigh(uint16 bps, uint16 maxBps);
    error CidTooLong(uint256 length, uint256 maxLength);
    error TaskNotFound(uint256 taskId);
    error TaskIsClosed(uint256 taskId);
    error CloseIsRequested(uint256 taskId);
    error NotSponsor(uint256 taskId, address caller);
    error NotAggregator(uint256 taskId, address caller);
    error StakeTooLow(uint256 taskId, uint256 stake, uint256 minStake);
    error NotRegistered(uint256 taskId, address trainer);
    /// @notice A reveal on a task with a sample bond claimed no samples.
    error ZeroSamples(uint256 taskId, address trainer);
    /// @notice A reveal claimed more samples than the trainer's stake bonds: `numSamples * stakePerSample > stake`.
    error SampleClaimUnbonded(uint256 taskId, address trainer, uint256 numSamples, uint256 bondNeeded, uint256 stake);
    error UnstakePending(uint256 taskId, address trainer);
    error UnstakeNotRequested(uint256 taskId, address trainer);
    error CooldownActive(uint256 taskId, address trainer, uint256 availableAt);
    error StakeLocked(uint256 taskId, address trainer, uint256 round);
    error RoundInProgress(uint256 taskId, uint256 round);
    error WrongRound(uint256 taskId, uint256 expected, uint256 given);
    error WrongPhase(uint256 taskId, uint256 round, RoundStatus status);
    error ModelMismatch(uint256 taskId, bytes32 expected, bytes32 given);
    error ZeroDigest();
    error AlreadyCommitted(uint256 taskId, uint256 round, address trainer);
    error NotCommitted(uint256 taskId, uint256 round, address trainer);
    error AlreadyRevealed(uint256 taskId, uint256 round, address trainer);
    error CommitmentMismatch(uint256 taskId, uint256 round, address trainer);
    error AlreadyFinalized(uint256 taskId, uint256 round);
    error RoundNotFinalized(uint256 taskId, uint256 round);
    error RoundExpired(uint256 taskId, uint256 round);
    error EvalDataMismatch(uint256 taskId, uint256 round, bytes32 commitment, bytes32 revealed);
    error PayoutExceedsBudget(uint256 taskId, uint256 total, uint256 budget);
    error PayoutExceedsPool(uint256 taskId, uint256 total, uint256 pool);
    error LengthMismatch(uint256 a, uint256 b);
    error ReputationAlreadyRecorded(uint256 taskId, uint256 round, address trainer);
    error AlreadyClaimed(uint256 taskId, uint256 round, address account);
    error InvalidProof(uint256 taskId, uint256 round, address account);
    error NotParticipant(uint256 taskId, uint256 round, address account);
    error ClaimWindowOver(uint256 taskId, uint256 round);
    error ClaimWindowOpen(uint256 taskId, uint256 round);
    error AlreadySwept(uint256 taskId, uint256 round);
    error SlashWindowOver(uint256 taskId, uint256 round);
    error AlreadySlashed(uint256 taskId, uint256 round, address trainer);
    error SlashTooHigh(uint256 taskId, uint16 bps, uint16 maxBps);
    error SlashCapReached(uint256 taskId, address trainer, uint256 slashed, uint256 cap);
    error InvalidQuorum(uint256 quorum, uint256 validators);
    error TooManyValidators(uint256 count, uint256 maxCount);
    error DuplicateValidator(address validator);
    error ValidatorIsAggregator(uint256 taskId, address validator);
    error BondTooLow(uint256 taskId, address account, uint256 bond, uint256 required);
    error BondLocked(uint256 taskId, address account);
    error NoBond(uint256 taskId, address account);
    error NotValidator(uint256 taskId, address account);
    error ValidationRequired(uint256 taskId);
    error NoValidation(uint256 taskId);
    error ProposalPending(uint256 taskId, uint256 round, uint8 nonce);
    error NoLiveProposal(uint256 taskId, uint256 round, uint8 nonce);
    error AlreadyVoted(uint256 taskId, uint256 round, address validator);
    error QuorumNotReached(uint256 taskId, uint256 round, uint256 attestations, uint256 quorum);
    error ProposalMismatch(uint256 taskId, uint256 round, bytes32 proposed, bytes32 given);
}
