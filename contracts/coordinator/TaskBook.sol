// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title TaskBook
/// @notice Creating, funding and closing training tasks.
/// @dev Tokens with transfer fees or rebasing balances are not supported: the pool is credited the nominal amount.
abstract contract TaskBook is CoordinatorStorage {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @notice Create a task and fund its pool with `funding` tokens pulled from the caller (the sponsor).
    /// @dev Reverts ZeroAddress (token or an aggregator), NoAggregators, ZeroAmount (minStake = 0),
    ///      InvalidDuration (a zero duration) or SlashCapTooHigh (maxSlashBps > MAX_SLASH_BPS). `funding` may be 0.
    /// @return taskId The new task's id (ids start at 1).
    function createTask(TaskParams calldata params, uint256 funding)
        external
        whenNotPaused
        nonReentrant
        returns (uint256 taskId)
    {
        _validate(params);
        taskId = ++_taskCount;
        TaskData storage t = _tasks[taskId];
        t.minStake = params.minStake;
        t.windowSeconds = params.windowSeconds;
        t.maxSlashBps = params.maxSlashBps;
        t.token = params.token;
        t.finalizeTimeoutSeconds = params.finalizeTimeoutSeconds;
        t.unstakeCooldownSeconds = params.unstakeCooldownSeconds;
        t.pool = funding.toUint128();
        t.rewardPerRound = params.rewardPerRound;
        t.sponsor = msg.sender;
        t.modelSpecHash = params.modelSpecHash;
        t.latestModelDigest = params.initialModelDigest;
        mapping(address => bool) storage isAgg = _aggregators[taskId];
        for (uint256 i = 0; i < params.aggregators.length; ++i) {
            isAgg[params.aggregators[i]] = true;
        }
        emit TaskCreated(taskId, msg.sender, params.token, params);
        if (funding != 0) {
            emit TaskFunded(taskId, msg.sender, funding, funding);
            IERC20(params.token).safeTransferFrom(msg.sender, address(this), funding);
        }
    }

    /// @notice Add `amount` tokens from the caller to the task's reward pool (anyone may fund).
    /// @dev Reverts ZeroAmount, TaskNotFound or TaskIsClosed.
    function fundTask(uint256 taskId, uint256 amount) external whenNotPaused nonReentrant {
        if (amount == 0) revert ZeroAmount();
        TaskData storage t = _existingTask(taskId);
        if (t.closed) revert TaskIsClosed(taskId);
        uint256 poolAfter = t.pool + amount;
        t.pool = poolAfter.toUint128();
        emit TaskFunded(taskId, msg.sender, amount, poolAfter);
        IERC20(t.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @notice Close the task and return its unallocated pool to the sponsor. Allowed when no round is open or
    ///         awaiting finalization (an expired round does not count). Owed payouts stay claimable and stakes
    ///         stay withdrawable; a closed task takes no more funding, stakes, rounds or slashes.
    /// @dev Sponsor only (NotSponsor); reverts TaskIsClosed when already closed, RoundInProgress when the current
    ///      round is Open or Closed. Not pausable, so the sponsor's funds are never stuck.
    /// @return reclaimed Tokens returned to the sponsor.
    function closeTask(uint256 taskId) external nonReentrant returns (uint256 reclaimed) {
        TaskData storage t = _existingTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(taskId, msg.sender);
        if (t.closed) revert TaskIsClosed(taskId);
        uint256 current = t.currentRound;
        if (!_isSettled(_status(t, _rounds[taskId][current]))) revert RoundInProgress(taskId, current);
        reclaimed = t.pool;
        t.pool = 0;
        t.closed = true;
        emit TaskClosed(taskId, msg.sender, reclaimed);
        if (reclaimed != 0) IERC20(t.token).safeTransfer(msg.sender, reclaimed);
    }

    /// @dev The parameter checks of createTask.
    function _validate(TaskParams calldata params) private pure {
        if (params.token == address(0)) revert ZeroAddress();
        if (params.minStake == 0) revert ZeroAmount();
        if (params.windowSeconds == 0) revert InvalidDuration(params.windowSeconds);
        if (params.finalizeTimeoutSeconds == 0) revert InvalidDuration(params.finalizeTimeoutSeconds);
        if (params.unstakeCooldownSeconds == 0) revert InvalidDuration(params.unstakeCooldownSeconds);
        if (params.maxSlashBps > MAX_SLASH_BPS) revert SlashCapTooHigh(params.maxSlashBps, MAX_SLASH_BPS);
        uint256 count = params.aggregators.length;
        if (count == 0) revert NoAggregators();
        for (uint256 i = 0; i < count; ++i) {
            if (params.aggregators[i] == address(0)) revert ZeroAddress();
        }
    }
}
