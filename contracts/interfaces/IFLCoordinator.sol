// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IFLCoordinator
/// @notice Types, events, errors and external functions of the flchain coordinator: training tasks with a reward
///         pool, trainer stakes, rounds, per-round update commitments, on-chain reputation, bounded slashing and
///         Merkle pull payouts whose budget the contract enforces.
/// @dev Conventions used throughout:
///      - Digests are SHA-256 of the exact bytes stored on IPFS (models, updates, score reports).
///      - `evalCommitment` = keccak256(bytes(evalCid)); the CID is revealed at finalization.
///      - Payout leaves follow OpenZeppelin's StandardMerkleTree:
///        leaf = keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, account, amount)))),
///        leafEncoding ["uint256", "uint256", "uint256", "address", "uint256"].
///      - Reputation values are fixed-point integers scaled by REPUTATION_SCALE (1e6 = 1.0).
interface IFLCoordinator {
    // ------------------------------------------------------------------ types

    /// @notice What a sponsor chooses when creating a task.
    struct TaskParams {
        address token; // reward and stake ERC-20
        uint128 rewardPerRound; // payout budget of one round, in token units
        uint128 minStake; // stake needed to submit updates
        uint32 windowSeconds; // submission window length of each round
        uint32 finalizeTimeoutSeconds; // after a window ends, the aggregator must finalize within this
        uint32 unstakeCooldownSeconds; // delay between requestUnstake and withdrawStake
        uint16 maxSlashBps; // largest slash per round, basis points of stake (<= MAX_SLASH_BPS)
        bytes32 modelSpecHash; // hash of the model specification every update must match
        bytes32 initialModelDigest; // SHA-256 of the initial global model bytes
        string initialModelCid; // IPFS CID of the initial global model
        address[] aggregators; // accounts allowed to open, finalize, score and slash
        string taskCardCid; // IPFS CID of the task card: the model spec JSON (hashing to modelSpecHash) and data notes
    }

    /// @notice A task as stored (aggregators are kept in a separate mapping).
    struct Task {
        address sponsor;
        address token;
        uint128 rewardPerRound;
        uint128 minStake;
        uint128 pool; // unallocated reward tokens
        uint128 owed; // allocated to finalized rounds and not yet claimed
        uint128 totalStaked;
        uint32 windowSeconds;
        uint32 finalizeTimeoutSeconds;
        uint32 unstakeCooldownSeconds;
        uint16 maxSlashBps;
        uint32 currentRound; // 0 before the first round is opened
        bool closed;
        bytes32 modelSpecHash;
        bytes32 latestModelDigest; // base model of the next round
    }

    /// @notice One round of one task.
    struct Round {
        bytes32 baseModelDigest;
        bytes32 evalCommitment;
        bytes32 newModelDigest;
        bytes32 reportDigest;
        bytes32 payoutRoot;
        uint128 payoutTotal;
        uint128 claimedTotal;
        uint40 openedAt;
        uint40 windowEnd;
        uint40 finalizedAt;
    }

    /// @notice A trainer's position in one task.
    struct Trainer {
        uint128 stake;
        uint32 lastRound; // last round the trainer committed an update to
        uint40 unstakeRequestedAt; // 0 when no unstake is pending
    }

    /// @notice A trainer's reputation in one task, as last recorded (values scaled by REPUTATION_SCALE).
    struct Reputation {
        int64 mu; // OpenSkill mean
        uint64 sigma; // OpenSkill standard deviation
        int64 score; // final score of the round it was recorded for
        uint64 round; // round it was recorded for (0 = never)
    }

    /// @notice Everything the aggregator publishes when it finalizes a round.
    struct Finalization {
        bytes32 newModelDigest;
        string newModelCid;
        bytes32 reportDigest;
        string reportCid;
        string evalCid; // must hash to the round's evalCommitment
        bytes32 payoutRoot;
        uint128 payoutTotal; // <= rewardPerRound and <= pool
    }

    /// @notice One payout claim (used by claimMany).
    struct Claim {
        uint256 round;
        uint256 index;
        address account;
        uint256 amount;
        bytes32[] proof;
    }

    enum RoundStatus {
        None, // not opened
        Open, // accepting submissions
        Closed, // window over, awaiting finalization
        Finalized,
        Expired // not finalized within the timeout: stakes unlock, the pool can be reclaimed
    }

    // ------------------------------------------------------------------ events

    event TaskCreated(uint256 indexed taskId, address indexed sponsor, address indexed token, TaskParams params);
    event TaskFunded(uint256 indexed taskId, address indexed funder, uint256 amount, uint256 poolAfter);
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
        uint256 windowEnd
    );
    event UpdateSubmitted(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed trainer,
        bytes32 digest,
        string cid,
        uint64 numSamples
    );
    event RoundFinalized(uint256 indexed taskId, uint256 indexed round, Finalization finalization);
    event ReputationsRecorded(
        uint256 indexed taskId, uint256 indexed round, address[] trainers, Reputation[] reputations
    );
    event Claimed(uint256 indexed taskId, uint256 indexed round, address indexed account, uint256 index, uint256 amount);
    event Slashed(
        uint256 indexed taskId,
        uint256 indexed round,
        address indexed trainer,
        uint256 amount,
        uint8 reasonCode,
        string evidenceCid
    );

    // ------------------------------------------------------------------ errors

    error ZeroAddress();
    error ZeroAmount();
    error NoAggregators();
    error InvalidDuration(uint32 seconds_);
    error SlashCapTooHigh(uint16 bps, uint16 maxBps);
    error TaskNotFound(uint256 taskId);
    error TaskIsClosed(uint256 taskId);
    error NotSponsor(uint256 taskId, address caller);
    error NotAggregator(uint256 taskId, address caller);
    error StakeTooLow(uint256 taskId, uint256 stake, uint256 minStake);
    error NotRegistered(uint256 taskId, address trainer);
    error UnstakePending(uint256 taskId, address trainer);
    error UnstakeNotRequested(uint256 taskId, address trainer);
    error CooldownActive(uint256 taskId, address trainer, uint256 availableAt);
    error StakeLocked(uint256 taskId, address trainer, uint256 round);
    error RoundInProgress(uint256 taskId, uint256 round);
    error WrongRound(uint256 taskId, uint256 expected, uint256 given);
    error ModelMismatch(uint256 taskId, bytes32 expected, bytes32 given);
    error ZeroDigest();
    error WindowClosed(uint256 taskId, uint256 round, uint256 windowEnd);
    error WindowStillOpen(uint256 taskId, uint256 round, uint256 windowEnd);
    error AlreadySubmitted(uint256 taskId, uint256 round, address trainer);
    error AlreadyFinalized(uint256 taskId, uint256 round);
    error RoundNotFinalized(uint256 taskId, uint256 round);
    error RoundExpired(uint256 taskId, uint256 round);
    error EvalDataMismatch(uint256 taskId, uint256 round, bytes32 commitment, bytes32 revealed);
    error PayoutExceedsBudget(uint256 taskId, uint256 total, uint256 budget);
    error PayoutExceedsPool(uint256 taskId, uint256 total, uint256 pool);
    error LengthMismatch(uint256 a, uint256 b);
    error ReputationAlreadyRecorded(uint256 taskId, uint256 round, address trainer);
    error AlreadyClaimed(uint256 taskId, uint256 round, uint256 index);
    error InvalidProof(uint256 taskId, uint256 round, address account);
    error NotParticipant(uint256 taskId, uint256 round, address trainer);
    error AlreadySlashed(uint256 taskId, uint256 round, address trainer);
    error SlashTooHigh(uint256 taskId, uint16 bps, uint16 maxBps);

    // ------------------------------------------------------------------ tasks

    /// @notice Create a task and fund its pool with `funding` tokens pulled from the caller (the sponsor).
    /// @return taskId The new task's id (ids start at 1).
    function createTask(TaskParams calldata params, uint256 funding) external returns (uint256 taskId);

    /// @notice Add `amount` tokens from the caller to the task's reward pool.
    function fundTask(uint256 taskId, uint256 amount) external;

    /// @notice Close the task and return its unallocated pool to the sponsor. Allowed when no round is open or
    ///         awaiting finalization (an expired round does not count). Owed payouts stay claimable.
    /// @return reclaimed Tokens returned to the sponsor.
    function closeTask(uint256 taskId) external returns (uint256 reclaimed);

    // ------------------------------------------------------------------ stakes

    /// @notice Stake `amount` tokens on a task; the trainer is registered while its stake is >= minStake.
    function stake(uint256 taskId, uint256 amount) external;

    /// @notice Stop participating; the stake can be withdrawn after the cooldown.
    function requestUnstake(uint256 taskId) external;

    /// @notice Withdraw the whole stake once the cooldown has passed and the last committed round is settled.
    /// @return amount Tokens returned to the trainer.
    function withdrawStake(uint256 taskId) external returns (uint256 amount);

    // ------------------------------------------------------------------ rounds

    /// @notice Open round `round` (= currentRound + 1) on the current global model.
    /// @param evalCommitment keccak256(bytes(evalCid)) of the round's evaluation data, revealed at finalization.
    function openRound(
        uint256 taskId,
        uint256 round,
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        bytes32 evalCommitment
    ) external;

    /// @notice Commit one update to the open round: its SHA-256 digest (stored), CID and sample count (event).
    function submitUpdate(uint256 taskId, uint256 round, bytes32 digest, string calldata cid, uint64 numSamples)
        external;

    /// @notice Finalize a round whose window has ended: new model, score report, revealed evaluation data and
    ///         the payout root; moves payoutTotal from the pool to the owed balance.
    function finalizeRound(uint256 taskId, uint256 round, Finalization calldata f) external;

    /// @notice Record reputations of a finalized round's participants; call in batches of any size.
    function recordReputations(
        uint256 taskId,
        uint256 round,
        address[] calldata trainers,
        Reputation[] calldata reputations
    ) external;

    // ------------------------------------------------------------------ payouts and slashing

    /// @notice Pay `amount` of round `round` to `account` against a StandardMerkleTree proof (anyone may call).
    function claim(
        uint256 taskId,
        uint256 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external;

    /// @notice Claim several rounds (or accounts) of one task in one transaction.
    function claimMany(uint256 taskId, Claim[] calldata claims) external;

    /// @notice Slash `bps` of a participant's stake for a finalized round (once per round, at most maxSlashBps);
    ///         the slashed tokens return to the reward pool.
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

    /// @notice A task's stored state.
    function getTask(uint256 taskId) external view returns (Task memory);

    /// @notice Whether `account` is an aggregator of the task.
    function isAggregator(uint256 taskId, address account) external view returns (bool);

    /// @notice A round's stored state.
    function getRound(uint256 taskId, uint256 round) external view returns (Round memory);

    /// @notice A round's lifecycle status at the current block time.
    function roundStatus(uint256 taskId, uint256 round) external view returns (RoundStatus);

    /// @notice A trainer's stake and lock state in a task.
    function getTrainer(uint256 taskId, address trainer) external view returns (Trainer memory);

    /// @notice The digest a trainer committed in a round (zero when none).
    function getSubmission(uint256 taskId, uint256 round, address trainer) external view returns (bytes32);

    /// @notice A trainer's last recorded reputation in a task.
    function getReputation(uint256 taskId, address trainer) external view returns (Reputation memory);

    /// @notice Whether payout leaf `index` of a round has been claimed.
    function isClaimed(uint256 taskId, uint256 round, uint256 index) external view returns (bool);

    /// @notice Whether a trainer was slashed for a round.
    function isSlashed(uint256 taskId, uint256 round, address trainer) external view returns (bool);
}
