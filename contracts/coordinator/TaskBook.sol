// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IFLCoordinator} from "../interfaces/IFLCoordinator.sol";
import {CoordinatorStorage} from "./CoordinatorStorage.sol";

/// @title TaskBook
/// @notice Creating, funding and closing training tasks. Closing is requested by the sponsor and takes effect at
///         the next round boundary, so it cannot race the aggregator's next openRound.
/// @dev Tokens with transfer fees or rebasing balances are not supported: the pool is credited the nominal amount.
abstract contract TaskBook is CoordinatorStorage {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @inheritdoc IFLCoordinator
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
        t.stakePerSample = params.stakePerSample;
        t.token = params.token;
        t.finalizeTimeoutSeconds = params.finalizeTimeoutSeconds;
        t.unstakeCooldownSeconds = params.unstakeCooldownSeconds;
        t.claimWindowSeconds = params.claimWindowSeconds;
        t.pool = funding.toUint128();
        t.rewardPerRound = params.rewardPerRound;
        t.sponsor = msg.sender;
        t.commitWindowSeconds = params.commitWindowSeconds;
        t.revealWindowSeconds = params.revealWindowSeconds;
        t.slashWindowSeconds = params.slashWindowSeconds;
        t.maxSlashBps = params.maxSlashBps;
        t.maxTotalSlashBps = params.maxTotalSlashBps;
        t.modelSpecHash = params.modelSpecHash;
        t.latestModelDigest = params.initialModelDigest;
        mapping(address => bool) storage isAgg = _aggregators[taskId];
        for (uint256 i = 0; i < params.aggregators.length; ++i) {
            isAgg[params.aggregators[i]] = true;
        }
        emit TaskCreated(taskId, msg.sender, params.token, params);
        _setValidators(taskId, t, params.validation);
        if (funding != 0) {
            emit TaskFunded(taskId, msg.sender, funding, funding);
            IERC20(params.token).safeTransferFrom(msg.sender, address(this), funding);
        }
    }

    /// @inheritdoc IFLCoordinator
    function fundTask(uint256 taskId, uint256 amount) external whenNotPaused nonReentrant {
        if (amount == 0) revert ZeroAmount();
        TaskData storage t = _existingTask(taskId);
        if (t.closed) revert TaskIsClosed(taskId);
        if (t.closeRequested) revert CloseIsRequested(taskId);
        uint256 poolAfter = t.pool + amount;
        t.pool = poolAfter.toUint128();
        emit TaskFunded(taskId, msg.sender, amount, poolAfter);
        IERC20(t.token).safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IFLCoordinator
    function requestClose(uint256 taskId) external nonReentrant {
        TaskData storage t = _existingTask(taskId);
        if (msg.sender != t.sponsor) revert NotSponsor(taskId, msg.sender);
        if (t.closed) revert TaskIsClosed(taskId);
        uint256 current = t.currentRound;
        bool settled = _isSettled(_status(t, _rounds[taskId][current]));
        if (!t.closeRequested) {
            t.closeRequested = true;
            emit CloseRequested(taskId, msg.sender);
        } else if (!settled) {
            revert RoundInProgress(taskId, current);
        }
        if (settled) _completeClose(taskId, t);
    }

    /// @dev Close the task: its pool returns to the sponsor. Callers hold the reentrancy lock.
    function _completeClose(uint256 taskId, TaskData storage t) internal override returns (uint256 reclaimed) {
        reclaimed = t.pool;
        t.pool = 0;
        t.closed = true;
        address sponsor = t.sponsor;
        emit TaskClosed(taskId, sponsor, reclaimed);
        if (reclaimed != 0) IERC20(t.token).safeTransfer(sponsor, reclaimed);
    }

    /// @dev The parameter checks of createTask.
    function _validate(TaskParams calldata params) private pure {
        if (params.token == address(0)) revert ZeroAddress();
        if (params.minStake == 0) revert ZeroAmount();
        _checkDuration(params.commitWindowSeconds);
        _checkDuration(params.revealWindowSeconds);
        _checkDuration(params.finalizeTimeoutSeconds);
        _checkDuration(params.unstakeCooldownSeconds);
        _checkDuration(params.claimWindowSeconds);
        _checkDuration(params.slashWindowSeconds);
        if (params.maxSlashBps > MAX_SLASH_BPS) revert SlashCapTooHigh(params.maxSlashBps, MAX_SLASH_BPS);
        if (params.maxTotalSlashBps > BPS_DENOMINATOR) {
            revert SlashCapTooHigh(params.maxTotalSlashBps, uint16(BPS_DENOMINATOR));
        }
        _checkCid(params.initialModelCid);
        _checkCid(params.taskCardCid);
        uint256 count = params.aggregators.length;
        if (count == 0) revert NoAggregators();
        for (uint256 i = 0; i < count; ++i) {
            if (params.aggregators[i] == address(0)) revert ZeroAddress();
        }
    }

    /// @dev Reverts InvalidDuration for a zero duration.
    function _checkDuration(uint32 seconds_) private pure {
        if (seconds_ == 0) revert InvalidDuration(seconds_);
    }
}
