// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";
import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title Payouts
/// @notice Merkle pull payouts of finalized rounds to the accounts that revealed in them, the sweep of what is
///         left unclaimed after the claim window, and bounded slashing of participants' stakes.
/// @dev A payout leaf is OpenZeppelin StandardMerkleTree's
///      keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, account, amount)))). The claimed flag
///      lives in the account's participation word, so a round pays each participant at most once and never more
///      than its payoutTotal, whatever the tree holds.
abstract contract Payouts is CoordinatorStorage {
    using SafeERC20 for IERC20;

    /// @inheritdoc IFLCoordinator
    function claim(
        uint256 taskId,
        uint256 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external whenNotPaused nonReentrant {
        TaskData storage t = _tasks[taskId];
        _settleClaim(taskId, t.claimWindowSeconds, round, index, account, amount, proof);
        t.owed -= uint128(amount);
        if (amount != 0) IERC20(t.token).safeTransfer(account, amount);
    }

    /// @inheritdoc IFLCoordinator
    function claimMany(uint256 taskId, Claim[] calldata claims) external whenNotPaused nonReentrant {
        TaskData storage t = _tasks[taskId];
        uint256 claimWindow = t.claimWindowSeconds;
        uint256 total = 0;
        for (uint256 i = 0; i < claims.length; ++i) {
            Claim calldata c = claims[i];
            _settleClaim(taskId, claimWindow, c.round, c.index, c.account, c.amount, c.proof);
            total += c.amount;
        }
        t.owed -= uint128(total);
        IERC20 token = IERC20(t.token);
        address payee = address(0);
        uint256 due = 0;
        for (uint256 i = 0; i < claims.length; ++i) {
            Claim calldata c = claims[i];
            if (c.account != payee) {
                if (due != 0) token.safeTransfer(payee, due);
                (payee, due) = (c.account, 0);
            }
            due += c.amount;
        }
        if (due != 0) token.safeTransfer(payee, due);
    }

    /// @inheritdoc IFLCoordinator
    function sweep(uint256 taskId, uint256 round) external whenNotPaused nonReentrant {
        TaskData storage t = _tasks[taskId];
        RoundData storage r = _rounds[taskId][round];
        if (r.finalizedAt == 0) revert RoundNotFinalized(taskId, round);
        if (r.swept) revert AlreadySwept(taskId, round);
        if (_inWindow(r, t.claimWindowSeconds)) revert ClaimWindowOpen(taskId, round);
        r.swept = true;
        uint128 amount = r.payoutTotal - r.claimedTotal;
        t.owed -= amount;
        address to = address(this);
        if (t.closed) {
            to = t.sponsor;
        } else {
            t.pool += amount;
        }
        emit RoundSwept(taskId, round, to, amount);
        if (to != address(this) && amount != 0) IERC20(t.token).safeTransfer(to, amount);
    }

    /// @inheritdoc IFLCoordinator
    function slash(
        uint256 taskId,
        uint256 round,
        address trainer,
        uint16 bps,
        uint8 reasonCode,
        string calldata evidenceCid
    ) external whenNotPaused nonReentrant {
        _requireAggregator(taskId);
        _checkCid(evidenceCid);
        TaskData storage t = _tasks[taskId];
        if (bps == 0) revert ZeroAmount();
        if (bps > t.maxSlashBps) revert SlashTooHigh(taskId, bps, t.maxSlashBps);
        RoundData storage r = _rounds[taskId][round];
        if (r.finalizedAt == 0) revert RoundNotFinalized(taskId, round);
        if (!_inWindow(r, t.slashWindowSeconds)) revert SlashWindowOver(taskId, round);
        Participation storage p = _participations[taskId][round][trainer];
        uint256 word = p.word;
        if (word & _REVEALED == 0) revert NotParticipant(taskId, round, trainer);
        if (word & _SLASHED != 0) revert AlreadySlashed(taskId, round, trainer);
        p.word = word | _SLASHED;
        uint128 amount = _cappedSlash(taskId, t.maxTotalSlashBps, trainer, bps);
        t.totalStaked -= amount;
        address to = address(this);
        if (t.closed) {
            to = t.sponsor;
        } else {
            t.pool += amount;
        }
        emit Slashed(taskId, round, trainer, amount, reasonCode, evidenceCid);
        if (to != address(this)) IERC20(t.token).safeTransfer(to, amount);
    }

    /// @dev Take `bps` of the trainer's stake, cut to what the cumulative cap (maxTotalSlashBps of its deposits)
    ///      still allows; reverts SlashCapReached when nothing is left under the cap.
    function _cappedSlash(uint256 taskId, uint256 maxTotalSlashBps, address trainer, uint16 bps)
        private
        returns (uint128 amount)
    {
        Trainer storage tr = _trainers[taskId][trainer];
        SlashBook storage book = _slashBooks[taskId][trainer];
        uint256 cap = (uint256(book.deposited) * maxTotalSlashBps) / BPS_DENOMINATOR;
        uint256 slashed = book.slashed;
        if (slashed >= cap) revert SlashCapReached(taskId, trainer, slashed, cap);
        uint256 wanted = (uint256(tr.stake) * bps) / BPS_DENOMINATOR;
        uint256 room = cap - slashed;
        amount = uint128(wanted < room ? wanted : room);
        if (amount == 0) revert SlashCapReached(taskId, trainer, slashed, cap);
        tr.stake -= amount;
        book.slashed = uint128(slashed + amount);
    }

    /// @dev Checks one claim and records it (claimed flag, round's claimedTotal, event); the caller updates owed and
    ///      transfers the tokens.
    function _settleClaim(
        uint256 taskId,
        uint256 claimWindow,
        uint256 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) private {
        RoundData storage r = _rounds[taskId][round];
        if (r.finalizedAt == 0) revert RoundNotFinalized(taskId, round);
        if (r.swept || !_inWindow(r, claimWindow)) revert ClaimWindowOver(taskId, round);
        Participation storage p = _participations[taskId][round][account];
        uint256 word = p.word;
        if (word & _REVEALED == 0) revert NotParticipant(taskId, round, account);
        if (word & _CLAIMED != 0) revert AlreadyClaimed(taskId, round, account);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, account, amount))));
        if (!MerkleProof.verifyCalldata(proof, r.payoutRoot, leaf)) revert InvalidProof(taskId, round, account);
        p.word = word | _CLAIMED;
        uint256 claimedAfter = r.claimedTotal + amount;
        uint256 payoutTotal = r.payoutTotal;
        if (claimedAfter > payoutTotal) revert PayoutExceedsBudget(taskId, claimedAfter, payoutTotal);
        r.claimedTotal = uint128(claimedAfter);
        emit Claimed(taskId, round, account, index, amount);
    }
}
