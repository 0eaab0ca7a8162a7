// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title ICoordinatorTypes
/// @notice The structs and the round status of the flchain coordinator (see IFLCoordinator).
interface ICoordinatorTypes {
    /// @notice What a sponsor chooses when creating a task.
    struct TaskParams {
        address token; // reward and stake ERC-20
        uint128 rewardPerRound; // payout budget of one round, in token units
        uint128 minStake; // stake needed to reveal updates
        uint32 commitWindowSeconds; // commit phase length of each round
        uint32 revealWindowSeconds; // reveal phase length, right after the commit phase
        uint32 finalizeTimeoutSeconds; // after the reveal phase, the aggregator must finalize within this
        uint32 unstakeCooldownSeconds; // delay between requestUnstake and withdrawStake
        uint32 claimWindowSeconds; // payouts of a round are claimable this long after its finalization
        uint32 slashWindowSeconds; // a round's participants are slashable this long after its finalization
        uint16 maxSlashBps; // largest slash per round, basis points of stake (<= MAX_SLASH_BPS)
        uint16 maxTotalSlashBps; // cap on all slashes of one trainer, bps of everything it staked on the task
        bytes32 modelSpecHash; // hash of the model specification every update must match
        bytes32 initialModelDigest; // SHA-256 of the initial global model bytes
        string initialModelCid; // IPFS CID of the initial global model
        address[] aggregators; // accounts allowed to open, finalize, score and slash
        string taskCardCid; // IPFS CID of the task card: the model spec JSON (hashing to modelSpecHash) and data notes
        ValidatorSet validation; // who must attest a round's result before it can be finalized (quorum 0: nobody)
        // Stake bonded per claimed sample: a reveal's numSamples times this must not exceed the trainer's stake, and
        // the round's aggregate weighs each update by its numSamples. 0: claims are unbonded and weigh nothing.
        uint128 stakePerSample;
    }

    /// @notice A task's validators: `quorum` of them must attest a proposed round result before it can be finalized.
    ///         Quorum 0 (with no validators) keeps the single-aggregator round: the aggregator finalizes directly.
    struct ValidatorSet {
        address[] validators; // m accounts, none of them an aggregator of the task, at most MAX_VALIDATORS
        uint8 quorum; // k, 1 <= k <= m (or 0 with no validators)
        uint96 bond; // bond each validator and the proposer must have deposited on the task
    }

    /// @notice The live (or last) proposal of a round on a task with validators.
    struct Proposal {
        bytes32 proposalHash; // keccak256(abi.encode(Finalization)) of the proposed result
        address proposer;
        uint40 deadline; // votes and finalization before this (the round's finalize deadline); 0 once decided
        uint8 nonce; // proposals made in the round so far (the live one's number)
        uint8 attestations;
        uint8 disputes;
        uint32 attestedBy; // bit i: validator i of the set attested
        uint32 disputedBy; // bit i: validator i of the set disputed
    }

    /// @notice A task as stored (aggregators are kept in a separate mapping).
    struct Task {
        address sponsor;
        address token;
        uint128 rewardPerRound;
        uint128 minStake;
        uint128 pool; // unallocated reward tokens
        uint128 owed; // allocated to finalized rounds and neither claimed nor swept
        uint128 totalStaked;
        uint32 commitWindowSeconds;
        uint32 revealWindowSeconds;
        uint32 finalizeTimeoutSeconds;
        uint32 unstakeCooldownSeconds;
        uint32 claimWindowSeconds;
        uint32 slashWindowSeconds;
        uint16 maxSlashBps;
        uint16 maxTotalSlashBps;
        uint32 currentRound; // 0 before the first round is opened
        bool closeRequested; // no round opens any more; closes when the current round is settled
        bool closed;
        bytes32 modelSpecHash;
        bytes32 latestModelDigest; // base model of the next round
        uint128 stakePerSample; // stake bonded per sample claimed at reveal (0: sample claims are unbonded)
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
        uint40 commitDeadline; // commits before, reveals from here
        uint40 revealDeadline; // reveals before; finalization from here
        uint40 finalizedAt;
        bool swept; // unclaimed remainder swept after the claim window
    }

    /// @notice A trainer's position in one task.
    struct Trainer {
        uint128 stake;
        uint32 lastRound; // last round the trainer revealed an update in
        uint40 unstakeRequestedAt; // 0 when no unstake is pending
        uint128 deposited; // everything ever staked on the task (the base of the cumulative slash cap)
        uint128 slashed; // everything slashed so far
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
        Committing, // accepting commitments
        Revealing, // accepting reveals of commitments
        Closed, // reveal phase over, awaiting finalization
        Finalized,
        Expired // not finalized within the timeout: stakes unlock, the pool can be reclaimed
    }
}
