// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title Staking
/// @notice Trainer stakes: a trainer is registered on a task while its stake is >= minStake and no unstake is
///         pending. Withdrawal waits for the cooldown after the request and for the trainer's last committed
///         round to be settled (finalized at least one cooldown ago, so the aggregator had time to slash, or expired).
abstract contract Staking is CoordinatorStorage {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice Stake `amount` tokens on a task; the trainer is registered while its stake is >= minStake.
    /// @dev Reverts ZeroAmount, TaskNotFound, TaskIsClosed, UnstakePending, or StakeTooLow when the resulting
    ///      stake is still below minStake (e.g. a first stake that is too small).
    function stake(uint256 taskId, uint256 amount) external whenNotPaused nonReentrant {
        if (amount == 0) revert ZeroAmount();
        TaskData storage t = _existingTask(taskId);
        if (t.closed) revert TaskIsClosed(taskId);
        Trainer storage tr = _trainers[taskId][msg.sender];
        if (tr.unstakeRequestedAt != 0) revert UnstakePending(taskId, msg.sender);
        uint256 stakeAfter = tr.stake + amount;
        if (stakeAfter < t.minStake) revert StakeTooLow(taskId, stakeAfter, t.minStake);
        tr.stake = stakeAfter.toUint128();
        t.totalStaked = (t.totalStaked + amount).toUint128();
        emit Staked(taskId, msg.sender, amount, stakeAfter);
        IERC20(t.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Stop participating; the stake can be withdrawn after the cooldown.
    /// @dev Reverts NotRegistered when the caller has no stake, UnstakePending when already requested. Not pausable.
    function requestUnstake(uint256 taskId) external {
        Trainer storage tr = _trainers[taskId][msg.sender];
        if (tr.stake == 0) revert NotRegistered(taskId, msg.sender);
        if (tr.unstakeRequestedAt != 0) revert UnstakePending(taskId, msg.sender);
        tr.unstakeRequestedAt = uint40(block.timestamp);
        emit UnstakeRequested(taskId, msg.sender, block.timestamp);
    }

    /// @notice Withdraw the whole stake once the cooldown has passed and the last committed round is settled.
    /// @dev Reverts UnstakeNotRequested; CooldownActive while the cooldown since the request (or since the last
    ///      committed round's finalization) runs; StakeLocked while that round is Open or awaiting finalization.
    ///      Not pausable, so stakes are never stuck.
    /// @return amount Tokens returned to the trainer.
    function withdrawStake(uint256 taskId) external nonReentrant returns (uint256 amount) {
        TaskData storage t = _tasks[taskId];
        Trainer storage tr = _trainers[taskId][msg.sender];
        uint256 requestedAt = tr.unstakeRequestedAt;
        if (requestedAt == 0) revert UnstakeNotRequested(taskId, msg.sender);
        uint256 cooldown = t.unstakeCooldownSeconds;
        if (block.timestamp < requestedAt + cooldown) {
            revert CooldownActive(taskId, msg.sender, requestedAt + cooldown);
        }
        uint256 lastRound = tr.lastRound;
        if (lastRound != 0) _requireSettledFor(taskId, t, lastRound, cooldown);
        amount = tr.stake;
        tr.stake = 0;
        tr.unstakeRequestedAt = 0;
        t.totalStaked -= uint128(amount);
        emit StakeWithdrawn(taskId, msg.sender, amount);
        if (amount != 0) IERC20(t.token).safeTransfer(msg.sender, amount);
    }

    /// @dev Reverts unless round `lastRound` expired or was finalized at least `cooldown` seconds ago.
    function _requireSettledFor(uint256 taskId, TaskData storage t, uint256 lastRound, uint256 cooldown)
        private
        view
    {
        RoundData storage r = _rounds[taskId][lastRound];
        RoundStatus s = _status(t, r);
        if (s == RoundStatus.Finalized) {
            uint256 availableAt = r.finalizedAt + cooldown;
            if (block.timestamp < availableAt) revert CooldownActive(taskId, msg.sender, availableAt);
        } else if (s != RoundStatus.Expired) {
            revert StakeLocked(taskId, msg.sender, lastRound);
        }
    }
}
