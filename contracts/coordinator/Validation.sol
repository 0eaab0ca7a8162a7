// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";
import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title Validation
/// @notice Validator quorums: on a task with m validators and quorum k, the aggregator proposes a round's result
///         instead of finalizing it; each validator re-runs the round and attests or disputes the proposal. k
///         attestations let anyone finalize it (claims open then); m - k + 1 disputes reject it for good, slash the
///         proposer's bond (at most the task's bond, into the task's pool) and let a new proposal be made. A round
///         decided neither way before its finalize deadline expires as any other. Validators and the proposer
///         hold bonds on the task; a bond is withdrawable whenever the task's current round is settled.
/// @dev A vote reads the voter's bond word (its amount and its index in the set) and the proposal's vote word, and
///      writes the vote word: no fresh slot, so one attestation stays under 40k gas. The set is replaced only
///      between rounds, so the bit indexes of a live proposal always refer to the set it was proposed under.
abstract contract Validation is CoordinatorStorage {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice Largest validator set of a task (the vote bitmaps are 32 bits wide).
    uint256 public constant MAX_VALIDATORS = 32;

    /// @inheritdoc IFLCoordinator
    function setValidators(uint256 taskId, ValidatorSet calldata v) external whenNotPaused {
        TaskData storage t = _existingTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(taskId, msg.sender);
        if (t.closed) revert TaskIsClosed(taskId);
        uint256 current = t.currentRound;
        if (!_isSettled(_status(t, _rounds[taskId][current]))) revert RoundInProgress(taskId, current);
        address[] storage old = _validatorLists[taskId];
        mapping(address => Bond) storage bonds = _bonds[taskId];
        for (uint256 i = 0; i < old.length; ++i) {
            bonds[old[i]].slot = 0;
        }
        _setValidators(taskId, t, v);
    }

    /// @inheritdoc IFLCoordinator
    function depositBond(uint256 taskId, uint256 amount) external whenNotPaused nonReentrant {
        if (amount == 0) revert ZeroAmount();
        TaskData storage t = _existingTask(taskId);
        if (t.closed) revert TaskIsClosed(taskId);
        Bond storage b = _bonds[taskId][msg.sender];
        uint256 bondAfter = b.amount + amount;
        b.amount = bondAfter.toUint96();
        t.totalBonded += uint128(amount);
        emit BondDeposited(taskId, msg.sender, amount, bondAfter);
        IERC20(t.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IFLCoordinator
    function withdrawBond(uint256 taskId) external nonReentrant returns (uint256 amount) {
        TaskData storage t = _tasks[taskId];
        Bond storage b = _bonds[taskId][msg.sender];
        amount = b.amount;
        if (amount == 0) revert NoBond(taskId, msg.sender);
        uint256 current = t.currentRound;
        if (!_isSettled(_status(t, _rounds[taskId][current]))) revert BondLocked(taskId, msg.sender);
        b.amount = 0;
        t.totalBonded -= uint128(amount);
        emit BondWithdrawn(taskId, msg.sender, amount);
        IERC20(t.token).safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IFLCoordinator
    function proposeRound(uint256 taskId, uint256 round, Finalization calldata f) external whenNotPaused {
        _requireAggregator(taskId);
        TaskData storage t = _tasks[taskId];
        uint256 quorum = t.quorum;
        if (quorum == 0) revert NoValidation(taskId);
        RoundData storage r = _rounds[taskId][round];
        RoundStatus s = _status(t, r);
        if (s != RoundStatus.Closed) revert WrongPhase(taskId, round, s);
        ProposalData storage p = _proposals[taskId][round];
        ProposalVotes memory v = p.votes;
        if (v.deadline != 0) revert ProposalPending(taskId, round, v.nonce);
        uint96 bond = t.bond;
        uint256 proposerBond = _bonds[taskId][msg.sender].amount;
        if (proposerBond < bond) revert BondTooLow(taskId, msg.sender, proposerBond, bond);
        _checkResult(taskId, round, t, r, f);
        bytes32 proposalHash = keccak256(abi.encode(f));
        uint8 nonce = v.nonce + 1;
        p.proposalHash = proposalHash;
        p.proposer = msg.sender;
        p.votes = ProposalVotes({
            deadline: uint40(uint256(r.revealDeadline) + t.finalizeTimeoutSeconds),
            nonce: nonce,
            attestations: 0,
            disputes: 0,
            attestedBy: 0,
            disputedBy: 0,
            quorum: uint8(quorum),
            disputeQuorum: uint8(t.validatorCount - quorum + 1),
            bond: bond
        });
        emit RoundProposed(taskId, round, msg.sender, nonce, proposalHash, f);
    }

    /// @inheritdoc IFLCoordinator
    function attestRound(uint256 taskId, uint256 round, uint8 nonce) external whenNotPaused {
        ProposalVotes storage v = _proposals[taskId][round].votes;
        uint32 bit = _voteBit(taskId, round, v, nonce);
        uint8 attestations = v.attestations + 1;
        v.attestations = attestations;
        v.attestedBy |= bit;
        emit RoundAttested(taskId, round, msg.sender, nonce, attestations);
    }

    /// @inheritdoc IFLCoordinator
    function disputeRound(uint256 taskId, uint256 round, uint8 nonce) external whenNotPaused {
        ProposalData storage p = _proposals[taskId][round];
        ProposalVotes storage v = p.votes;
        uint32 bit = _voteBit(taskId, round, v, nonce);
        uint8 disputes = v.disputes + 1;
        v.disputes = disputes;
        v.disputedBy |= bit;
        emit RoundDisputed(taskId, round, msg.sender, nonce, disputes);
        if (disputes >= v.disputeQuorum) _reject(taskId, round, p);
    }

    /// @dev Rejects a proposal for good: it can no longer be voted on or finalized; the proposer loses its bond up to
    ///      the task's bond at proposal time, into the task's pool (the round's budget source).
    function _reject(uint256 taskId, uint256 round, ProposalData storage p) private {
        ProposalVotes storage v = p.votes;
        v.deadline = 0;
        address proposer = p.proposer;
        Bond storage b = _bonds[taskId][proposer];
        uint96 held = b.amount;
        uint96 cut = held < v.bond ? held : v.bond;
        b.amount = held - cut;
        TaskData storage t = _tasks[taskId];
        t.totalBonded -= cut;
        t.pool += cut;
        emit ProposalRejected(taskId, round, proposer, v.nonce, cut);
    }

    /// @dev The caller's bit in the vote bitmaps of the live proposal `nonce`, after checking that the caller is a
    ///      bonded validator who has not voted on it and that its deadline has not passed.
    function _voteBit(uint256 taskId, uint256 round, ProposalVotes storage v, uint8 nonce)
        private
        view
        returns (uint32 bit)
    {
        ProposalVotes memory votes = v;
        if (votes.deadline <= block.timestamp || votes.nonce != nonce) revert NoLiveProposal(taskId, round, nonce);
        Bond memory b = _bonds[taskId][msg.sender];
        if (b.slot == 0) revert NotValidator(taskId, msg.sender);
        if (b.amount < votes.bond) revert BondTooLow(taskId, msg.sender, b.amount, votes.bond);
        bit = uint32(1) << (b.slot - 1);
        if ((votes.attestedBy | votes.disputedBy) & bit != 0) revert AlreadyVoted(taskId, round, msg.sender);
    }

    /// @dev Write the task's validator set (the previous members' slots are already cleared) and emit it.
    function _setValidators(uint256 taskId, TaskData storage t, ValidatorSet calldata v) internal override {
        uint256 count = v.validators.length;
        if (count > MAX_VALIDATORS) revert TooManyValidators(count, MAX_VALIDATORS);
        if (v.quorum > count || (count != 0 && v.quorum == 0)) revert InvalidQuorum(v.quorum, count);
        if (count != 0 && v.bond == 0) revert ZeroAmount();
        mapping(address => Bond) storage bonds = _bonds[taskId];
        for (uint256 i = 0; i < count; ++i) {
            address validator = v.validators[i];
            if (validator == address(0)) revert ZeroAddress();
            if (_aggregators[taskId][validator]) revert ValidatorIsAggregator(taskId, validator);
            Bond storage b = bonds[validator];
            if (b.slot != 0) revert DuplicateValidator(validator);
            b.slot = uint8(i + 1);
        }
        _validatorLists[taskId] = v.validators;
        t.quorum = v.quorum;
        t.validatorCount = uint8(count);
        t.bond = v.bond;
        emit ValidatorsSet(taskId, v.validators, v.quorum, v.bond, uint256(t.currentRound) + 1);
    }
}
