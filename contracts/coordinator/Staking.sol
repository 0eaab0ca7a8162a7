// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";
import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title Staking
/// @notice Trainer stakes: a trainer is registered on a task while its stake is >= minStake and no unstake is
///         pending. Withdrawal waits for the cooldown after the request and until no round the trainer revealed in
///         can still be slashed (its slash window, counted on the active clock, has passed, or it expired).
abstract contract Staking is CoordinatorStorage {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @inheritdoc IFLCoordinator
    function stake(uint256 taskId, uint256 amount) external whenNotPaused nonReentrant {
        if (amount == 0) revert ZeroAmount();
        TaskData storage t = _existingTask(taskId);
        if (t.closed) revert TaskIsClosed(taskId);
        Trainer storage tr = _trainers[taskId][msg.sender];
        if (tr.unstakeRequestedAt != 0) revert UnstakePending(taskId, msg.sender);
        uint256 stakeAfter = tr.stake + amount;
        if (stakeAfter < t.minStake) revert StakeTooLow(taskId, stakeAfter, t.minStake);
        tr.stake = stakeAfter.toUint128();
        uint256 totalAfter = t.totalStaked + amount;
        t.totalStaked = totalAfter.toUint128();
        SlashBook storage book = _slashBooks[taskId][msg.sender];
        uint256 depositedAfter = book.deposited + amount;
        book.deposited = depositedAfter.toUint128();
        emit Staked(taskId, msg.sender, amount, stakeAfter);
        IERC20(t.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IFLCoordinator
    function requestUnstake(uint256 taskId) external {
        Trainer storage tr = _trainers[taskId][msg.sender];
        if (tr.stake == 0) revert NotRegistered(taskId, msg.sender);
        if (tr.unstakeRequestedAt != 0) revert UnstakePending(taskId, msg.sender);
        tr.unstakeRequestedAt = uint40(block.timestamp);
        emit UnstakeRequested(taskId, msg.sender, block.timestamp);
    }

    /// @inheritdoc IFLCoordinator
    function withdrawStake(uint256 taskId) external nonReentrant returns (uint256 amount) {
        TaskData storage t = _tasks[taskId];
        Trainer storage tr = _trainers[taskId][msg.sender];
        uint256 requestedAt = tr.unstakeRequestedAt;
        if (requestedAt == 0) revert UnstakeNotRequested(taskId, msg.sender);
        uint256 availableAt = requestedAt + t.unstakeCooldownSeconds;
        if (block.timestamp < availableAt) revert CooldownActive(taskId, msg.sender, availableAt);
        uint256 lastRound = tr.lastRound;
        if (lastRound != 0) _requireUnslashable(taskId, t, lastRound);
        amount = tr.stake;
        tr.stake = 0;
        tr.unstakeRequestedAt = 0;
        t.totalStaked -= uint128(amount);
        emit StakeWithdrawn(taskId, msg.sender, amount);
        if (amount != 0) IERC20(t.token).safeTransfer(msg.sender, amount);
    }

    /// @dev Reverts StakeLocked unless no round up to `lastRound` can still be slashed: `lastRound` is settled and
    ///      outside its slash window; if it expired, the task's last round finalized before it must be outside its
    ///      slash window (every earlier finalized round was finalized no later, so its window ended no later).
    function _requireUnslashable(uint256 taskId, TaskData storage t, uint256 lastRound) private view {
        RoundData storage r = _rounds[taskId][lastRound];
        RoundStatus s = _status(t, r);
        if (s == RoundStatus.Expired) {
            uint256 prev = r.prevFinalized;
            if (prev == 0) return;
            r = _rounds[taskId][prev];
        } else if (s != RoundStatus.Finalized) {
            revert StakeLocked(taskId, msg.sender, lastRound);
        }
        if (_inWindow(r, t.slashWindowSeconds)) revert StakeLocked(taskId, msg.sender, lastRound);
    }
}
