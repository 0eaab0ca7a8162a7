// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IFLCoordinator} from "./interfaces/IFLCoordinator.sol";
import {Payouts} from "./coordinator/Payouts.sol";
import {Staking} from "./coordinator/Staking.sol";
import {TaskBook} from "./coordinator/TaskBook.sol";
import {Validation} from "./coordinator/Validation.sol";
import {Views} from "./coordinator/Views.sol";

/// @title FLCoordinator
/// @notice The flchain coordinator: training tasks with a reward pool, trainer stakes, commit-reveal
///         rounds, validator quorums over round results, on-chain reputation, bounded slashing and Merkle pull
///         payouts (see IFLCoordinator).
/// @dev Deployable composition of the modules. The admin (DEFAULT_ADMIN_ROLE) manages roles; PAUSER_ROLE may
///      pause everything except the exits (requestUnstake, withdrawStake, requestClose), so no funds get stuck,
///      and commitUpdate, which moves and locks nothing.
///      Paused time does not count toward the claim and slash windows nor toward the stake lock that waits them
///      out (the active clock, see IFLCoordinator): a pause can neither expire owed rewards nor help a slashable
///      trainer leave.
contract FLCoordinator is TaskBook, Staking, Payouts, Validation, Views, AccessControl {
    /// @notice Role allowed to pause and unpause the coordinator.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    /// @param admin Receives DEFAULT_ADMIN_ROLE and PAUSER_ROLE.
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
    }

    /// @notice Stop task creation, funding, staking, rounds, reputations, slashing and claims.
    /// @dev PAUSER_ROLE only; reverts EnforcedPause when already paused.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
        _pauseClock.pausedSince = uint40(block.timestamp);
    }

    /// @notice Resume normal operation.
    /// @dev PAUSER_ROLE only; reverts ExpectedPause when not paused.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
        PauseClock memory c = _pauseClock;
        _pauseClock = PauseClock({pausedSince: 0, pausedTotal: c.pausedTotal + uint40(block.timestamp) - c.pausedSince});
    }

    /// @notice ERC-165: AccessControl's interfaces and IFLCoordinator.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IFLCoordinator).interfaceId || super.supportsInterface(interfaceId);
    }
}
