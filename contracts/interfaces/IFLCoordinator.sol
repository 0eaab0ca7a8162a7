// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICoordinatorEvents} from "./ICoordinatorEvents.sol";

/// @title IFLCoordinator
/// @notice External functions of the flchain coordinator: training tasks with a reward pool, trainer stakes,
///         commit-reveal rounds, on-chain reputation, bounded slashing and Merkle pull payouts to participants.
/// @dev Conventions used throughout:
///      - Digests are SHA-256 of the exact bytes stored on IPFS (models, updates, score reports).
///      - `evalCommitment` = keccak256(bytes(evalCid)); the CID is revealed at finalization.
///      - Update commitment = keccak256(abi.encode(block.chainid, coordinator, taskId, round, trainer, updateDigest,
///        salt)); it binds the update to its author, so a copied commitment or reveal is worthless to anyone else.
///        The contract keeps the commitment's upper 253 bits (the low 3 bits hold the round's revealed, claimed and
///        slashed flags of the trainer); `getCommitment` returns it with those bits cleared.
///      - Payout leaves follow OpenZeppelin's StandardMerkleTree:
///        leaf = keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, account, amount)))),
///        leafEncoding ["uint256", "uint256", "uint256", "address", "uint256"]. Only accounts that revealed in the
///        round can be paid, once per round (one leaf per account).
///      - Windows after finalization (claim, slash, the stake lock) run on an active clock that stops while the
///        coordinator is paused: paused time extends them, so a pause neither shortens a claim window nor lets a
///        slashable trainer withdraw. Commit, reveal and finalize deadlines are wall-clock.
///      - Reputation values are fixed-point integers scaled by REPUTATION_SCALE (1e6 = 1.0).
///      - CIDs and evidence strings are at most MAX_CID_BYTES bytes long.
interface IFLCoordinator is ICoordinatorEvents {
    // ------------------------------------------------------------------ tasks

    /// @notice Create a task and fund its pool with `funding` tokens pulled from the caller (the sponsor).
    /// @dev Reverts ZeroAddress (token or an aggregator), NoAggregators, ZeroAmount (minStake = 0),
    ///      InvalidDuration (a zero duration), SlashCapTooHigh, CidTooLong, and the validator-set checks of
    ///      setValidators. `funding` may be 0.
    /// @return taskId The new task's id (ids start at 1).
    function createTask(TaskParams calldata params, uint256 funding) external returns (uint256 taskId);

    /// @notice Add `amount` tokens from the caller to the task's reward pool (anyone may fund).
    /// @dev Reverts ZeroAmount, TaskNotFound, TaskIsClosed or CloseIsRequested.
    function fundTask(uint256 taskId, uint256 amount) external;

    /// @notice Ask to close the task. No round opens after this; the task closes (its pool returns to the sponsor)
    ///         at once when no round is in progress, else when the current round is finalized, or — if it expires —
    ///         on a second call after expiry. Owed payouts stay claimable until swept, stakes stay withdrawable,
    ///         and the rounds' slash windows still run.
    /// @dev Sponsor only (NotSponsor); reverts TaskIsClosed, or RoundInProgress when called again while the round
    ///      is still in progress. Not pausable.
    function requestClose(uint256 taskId) external;

    // ------------------------------------------------------------------ stakes

    /// @notice Stake `amount` tokens on a task; the trainer is registered while its stake is >= minStake.
    /// @dev Reverts ZeroAmount, TaskNotFound, TaskIsClosed, UnstakePending, or StakeTooLow when the resulting
    ///      stake is still below minStake.
    function stake(uint256 taskId, uint256 amount) external;

    /// @notice Stop participating; the stake can be withdrawn after the cooldown and the slash window.
    /// @dev Reverts NotRegistered when the caller has no stake, UnstakePending when already requested. Not pausable.
    function requestUnstake(uint256 taskId) external;

    /// @notice Withdraw the whole stake once the cooldown has passed and no round the trainer revealed in can
    ///         still be slashed.
    /// @dev Reverts UnstakeNotRequested; CooldownActive while the cooldown runs; StakeLocked while the last revealed
    ///      round is in progress or inside its slash window (or, if it expired, while the slash window of the
    ///      task's last round finalized before it runs). Not pausable; paused time does not count toward windows.
    /// @return amount Tokens returned to the trainer.
    function withdrawStake(uint256 taskId) external returns (uint256 amount);

    // ------------------------------------------------------------------ rounds

    /// @notice Open round `round` (= currentRound + 1) on the current global model: its commit phase starts.
    /// @dev Aggregator only. Reverts TaskIsClosed, CloseIsRequested, WrongRound, RoundInProgress (previous round not
    ///      Finalized or Expired), ModelMismatch, ZeroDigest (zero evalCommitment), CidTooLong.
    /// @param evalCommitment keccak256(bytes(evalCid)) of the round's evaluation data, revealed at finalization.
    function openRound(
        uint256 taskId,
        uint256 round,
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        bytes32 evalCommitment
    ) external;

    /// @notice Commit to an update during the round's commit phase, without publishing it (one per account).
    /// @dev Reverts ZeroDigest (commitment with no bit above the low 3 set), WrongRound (not the current round),
    ///      WrongPhase (commit phase over), AlreadyCommitted. Registration is checked at reveal: a commitment alone
    ///      locks nothing, earns nothing and is not slashable. Not pausable, for the same reason (and because the
    ///      pause check's storage read would cost more than the 50k gas the commit is allowed).
    /// @param commitment updateCommitment(taskId, round, msg.sender, updateDigest, salt).
    function commitUpdate(uint256 taskId, uint256 round, bytes32 commitment) external;

    /// @notice Reveal the committed update during the reveal phase: its SHA-256 digest, the salt, its CID and
    ///         sample count. Only a revealed update takes part in the round (scores, payouts, slashing). On a task
    ///         with a sample bond (stakePerSample > 0) the sample count is a claim backed by stake: it must be at
    ///         least 1 and `numSamples * stakePerSample` must not exceed the trainer's stake, which stays locked
    ///         while the round can be slashed; the round's aggregate then weighs the update by numSamples.
    /// @dev Reverts ZeroDigest, CidTooLong, WrongRound, WrongPhase (not Revealing), NotRegistered (stake below
    ///      minStake or unstake pending), ZeroSamples and SampleClaimUnbonded (sample bond only), NotCommitted,
    ///      AlreadyRevealed, CommitmentMismatch.
    function revealUpdate(
        uint256 taskId,
        uint256 round,
        bytes32 updateDigest,
        bytes32 salt,
        string calldata cid,
        uint64 numSamples
    ) external;

    /// @notice Finalize a round whose reveal phase has ended: new model, score report, revealed evaluation data
    ///         and the payout root; moves payoutTotal from the pool to the owed balance (its claims open).
    ///         Completes a requested close. On a task without validators the aggregator finalizes directly; on a
    ///         task with validators anyone may finalize the round's live proposal once it holds a quorum of
    ///         attestations, passing the proposed result unchanged.
    /// @dev Aggregator only when the task's quorum is 0 (NotAggregator). Reverts WrongRound (never opened),
    ///      WrongPhase (still Committing or Revealing), AlreadyFinalized, RoundExpired, ZeroDigest, CidTooLong,
    ///      EvalDataMismatch, PayoutExceedsBudget, PayoutExceedsPool; with validators also NoLiveProposal,
    ///      QuorumNotReached, ProposalMismatch (`f` is not the proposed result). Gas does not depend on the
    ///      participants.
    function finalizeRound(uint256 taskId, uint256 round, Finalization calldata f) external;

    // ------------------------------------------------------------------ validators

    /// @notice Replace the task's validator set, quorum and bond; the new set rules from the next round on.
    /// @dev Sponsor only (NotSponsor). Only between rounds: reverts RoundInProgress while the current round is not
    ///      Finalized or Expired; TaskIsClosed. Set checks as in createTask: TooManyValidators (> MAX_VALIDATORS),
    ///      InvalidQuorum (k > m, or k = 0 with validators), ZeroAmount (zero bond with validators), ZeroAddress,
    ///      DuplicateValidator, ValidatorIsAggregator.
    function setValidators(uint256 taskId, ValidatorSet calldata validation) external;

    /// @notice Add `amount` tokens from the caller to its bond on the task (validators and proposers need one).
    /// @dev Reverts ZeroAmount, TaskNotFound, TaskIsClosed.
    function depositBond(uint256 taskId, uint256 amount) external;

    /// @notice Withdraw the caller's whole bond; possible whenever the task's current round is settled
    ///         (Finalized or Expired, or none open), so no bond leaves while a proposal it backs can be decided.
    /// @dev Reverts NoBond, BondLocked. Not pausable.
    /// @return amount Tokens returned.
    function withdrawBond(uint256 taskId) external returns (uint256 amount);

    /// @notice Propose a round's result (what finalizeRound would publish) for the validators to check; the
    ///         proposal lives until it is finalized, rejected, or the round's finalize deadline passes.
    /// @dev Aggregator only, with a bond >= the task's bond (BondTooLow). Reverts NoValidation (quorum 0: finalize
    ///      directly), WrongPhase (round not Closed), ProposalPending (a live proposal exists), and the result
    ///      checks of finalizeRound. Gas does not depend on the participants.
    function proposeRound(uint256 taskId, uint256 round, Finalization calldata f) external;

    /// @notice Attest the round's live proposal number `nonce` (the caller re-ran the round and got the same result).
    /// @dev Validators of the task with a bond >= the bond at proposal time. Reverts NoLiveProposal (none live, an
    ///      other nonce, or its deadline passed), NotValidator, BondTooLow, AlreadyVoted (one vote per validator and
    ///      proposal).
    function attestRound(uint256 taskId, uint256 round, uint8 nonce) external;

    /// @notice Dispute the round's live proposal number `nonce`. The dispute that makes m - k + 1 rejects the
    ///         proposal for good, slashes the proposer's bond by up to the task's bond (into the task's pool) and
    ///         lets a new proposal be made.
    /// @dev Reverts as attestRound.
    function disputeRound(uint256 taskId, uint256 round, uint8 nonce) external;

    /// @notice Record reputations of a finalized round's participants (accounts that revealed); any batch size.
    /// @dev Aggregator only. Reverts LengthMismatch, RoundNotFinalized, NotParticipant, WrongRound (an entry's round
    ///      field is not `round`), ReputationAlreadyRecorded (recorded for this round or a later one).
    function recordReputations(
        uint256 taskId,
        uint256 round,
        address[] calldata trainers,
        Reputation[] calldata reputations
    ) external;

    // ------------------------------------------------------------------ payouts and slashing

    /// @notice Pay `amount` of round `round` to `account` against a StandardMerkleTree proof (anyone may call),
    ///         within the round's claim window.
    /// @dev Reverts RoundNotFinalized, ClaimWindowOver (window passed or round swept), NotParticipant (`account`
    ///      did not reveal in the round), AlreadyClaimed (once per account and round), InvalidProof,
    ///      PayoutExceedsBudget (claims of the round would exceed its payoutTotal).
    function claim(
        uint256 taskId,
        uint256 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external;

    /// @notice Claim several rounds (or accounts) of one task in one transaction; each is checked as in `claim`.
    function claimMany(uint256 taskId, Claim[] calldata claims) external;

    /// @notice After a round's claim window, move its unclaimed remainder (payoutTotal - claimedTotal, which
    ///         includes any gap between the declared total and the tree's leaves) back to the pool, or to the
    ///         sponsor when the task is closed (anyone may call). Cost does not depend on the number of leaves.
    /// @dev Reverts RoundNotFinalized, ClaimWindowOpen, AlreadySwept.
    function sweep(uint256 taskId, uint256 round) external;

    /// @notice Slash `bps` of a participant's stake for a finalized round, within its slash window (also after the
    ///         task closed). The slashed tokens go to the pool, or to the sponsor when the task is closed.
    /// @dev Aggregator only. Reverts ZeroAmount (bps = 0), SlashTooHigh (> maxSlashBps), CidTooLong,
    ///      RoundNotFinalized, SlashWindowOver, NotParticipant (did not reveal), AlreadySlashed, SlashCapReached
    ///      (the trainer lost maxTotalSlashBps of its deposits already; a slash above the rest is cut to it).
    ///      Reason codes (emitted only): 1 digest mismatch, 2 copied update, 3 non-finite values, 4 malformed update.
    function slash(
        uint256 taskId,
        uint256 round,
        address trainer,
        uint16 bps,
        uint8 reasonCode,
        string calldata evidenceCid
    ) external;

    // ------------------------------------------------------------------ views

    /// @notice Number of tasks created so far (the last task id).
    function taskCount() external view returns (uint256);

    /// @notice A task's stored state (all zero for an unknown id).
    function getTask(uint256 taskId) external view returns (Task memory);

    /// @notice Whether `account` is an aggregator of the task.
    function isAggregator(uint256 taskId, address account) external view returns (bool);

    /// @notice A round's stored state (all zero for a round never opened).
    function getRound(uint256 taskId, uint256 round) external view returns (Round memory);

    /// @notice The task's validator set, quorum and bond.
    function getValidators(uint256 taskId) external view returns (ValidatorSet memory);

    /// @notice A round's live or last proposal (all zero when none was made).
    function getProposal(uint256 taskId, uint256 round) external view returns (Proposal memory);

    /// @notice An account's bond on a task.
    function bondOf(uint256 taskId, address account) external view returns (uint256);

    /// @notice A round's lifecycle status at the current block time.
    function roundStatus(uint256 taskId, uint256 round) external view returns (RoundStatus);

    /// @notice A trainer's stake, lock state and slash totals in a task.
    function getTrainer(uint256 taskId, address trainer) external view returns (Trainer memory);

    /// @notice The commitment hash of an update, as commitUpdate expects it from `trainer`.
    function updateCommitment(uint256 taskId, uint256 round, address trainer, bytes32 updateDigest, bytes32 salt)
        external
        view
        returns (bytes32);

    /// @notice A trainer's commitment in a round (low 3 bits cleared; zero when none) and whether it was revealed.
    function getCommitment(uint256 taskId, uint256 round, address trainer)
        external
        view
        returns (bytes32 commitment, bool revealed);

    /// @notice A trainer's last recorded reputation in a task.
    function getReputation(uint256 taskId, address trainer) external view returns (Reputation memory);

    /// @notice Whether `account` has claimed its payout of a round.
    function isClaimed(uint256 taskId, uint256 round, address account) external view returns (bool);

    /// @notice Whether a trainer was slashed for a round.
    function isSlashed(uint256 taskId, uint256 round, address trainer) external view returns (bool);

    /// @notice The active clock of the claim and slash windows: block time minus all time spent paused.
    function activeTime() external view returns (uint256);
}
