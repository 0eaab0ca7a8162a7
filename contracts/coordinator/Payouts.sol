// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title Payouts
/// @notice Merkle pull payouts of finalized rounds and bounded slashing of participants' stakes.
/// @dev A payout leaf is OpenZeppelin StandardMerkleTree's
///      keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, account, amount)))); `index` is the
///      leaf's claim bit. A round never pays out more than its payoutTotal, whatever the tree holds.
abstract contract Payouts is CoordinatorStorage {
    using SafeERC20 for IERC20;

    /// @notice Pay `amount` of round `round` to `account` against a StandardMerkleTree proof (anyone may call).
    /// @dev Reverts RoundNotFinalized, AlreadyClaimed, InvalidProof, or PayoutExceedsBudget if the claims of the
    ///      round would exceed its payoutTotal.
    function claim(
        uint256 taskId,
        uint256 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) external whenNotPaused nonReentrant {
        _settleClaim(taskId, round, index, account, amount, proof);
        TaskData storage t = _tasks[taskId];
        t.owed -= uint128(amount);
        if (amount != 0) IERC20(t.token).safeTransfer(account, amount);
    }

    /// @notice Claim several rounds (or accounts) of one task in one transaction.
    /// @dev Every claim is checked as in `claim`; consecutive claims of the same account are paid in one transfer.
    function claimMany(uint256 taskId, Claim[] calldata claims) external whenNotPaused nonReentrant {
        uint256 total = 0;
        for (uint256 i = 0; i < claims.length; ++i) {
            Claim calldata c = claims[i];
            _settleClaim(taskId, c.round, c.index, c.account, c.amount, c.proof);
            total += c.amount;
        }
        TaskData storage t = _tasks[taskId];
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

    /// @notice Slash `bps` of a participant's stake for a finalized round (once per round, at most maxSlashBps);
    ///         the slashed tokens return to the reward pool.
    /// @dev Aggregator only. Reverts TaskIsClosed, ZeroAmount (bps = 0), SlashTooHigh, RoundNotFinalized,
    ///      NotParticipant (no update committed in that round), AlreadySlashed. `reasonCode` and `evidenceCid` are
    ///      only emitted (reason codes: 1 digest mismatch, 2 copied update, 3 non-finite values, 4 malformed update).
    function slash(
        uint256 taskId,
        uint256 round,
        address trainer,
        uint16 bps,
        uint8 reasonCode,
        string calldata evidenceCid
    ) external whenNotPaused {
        _requireAggregator(taskId);
        TaskData storage t = _tasks[taskId];
        if (t.closed) revert TaskIsClosed(taskId);
        if (bps == 0) revert ZeroAmount();
        if (bps > t.maxSlashBps) revert SlashTooHigh(taskId, bps, t.maxSlashBps);
        if (_rounds[taskId][round].finalizedAt == 0) revert RoundNotFinalized(taskId, round);
        if (_submissions[taskId][round][trainer].digest == bytes32(0)) revert NotParticipant(taskId, round, trainer);
        mapping(address => bool) storage slashed = _slashed[taskId][round];
        if (slashed[trainer]) revert AlreadySlashed(taskId, round, trainer);
        slashed[trainer] = true;
        Trainer storage tr = _trainers[taskId][trainer];
        uint128 amount = uint128((uint256(tr.stake) * bps) / BPS_DENOMINATOR);
        tr.stake -= amount;
        t.totalStaked -= amount;
        t.pool += amount;
        emit Slashed(taskId, round, trainer, amount, reasonCode, evidenceCid);
    }

    /// @dev Checks one claim and records it (claim bit, round's claimedTotal, event); the caller updates owed and
    ///      transfers the tokens.
    function _settleClaim(
        uint256 taskId,
        uint256 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof
    ) private {
        RoundData storage r = _rounds[taskId][round];
        if (r.finalizedAt == 0) revert RoundNotFinalized(taskId, round);
        if (_isClaimed(taskId, round, index)) revert AlreadyClaimed(taskId, round, index);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(taskId, round, index, account, amount))));
        if (!MerkleProof.verifyCalldata(proof, r.payoutRoot, leaf)) revert InvalidProof(taskId, round, account);
        _setClaimed(taskId, round, index);
        uint256 claimedAfter = r.claimedTotal + amount;
        uint256 payoutTotal = r.payoutTotal;
        if (claimedAfter > payoutTotal) revert PayoutExceedsBudget(taskId, claimedAfter, payoutTotal);
        r.claimedTotal = uint128(claimedAfter);
        emit Claimed(taskId, round, account, index, amount);
    }
}
