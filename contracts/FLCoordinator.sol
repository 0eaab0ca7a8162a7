// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

import {IFLCoordinator} from "./interfaces/IFLCoordinator.sol";
import {Payouts} from "./coordinator/Payouts.sol";
import {Rounds} from "./coordinator/Rounds.sol";
import {Staking} from "./coordinator/Staking.sol";
import {TaskBook} from "./coordinator/TaskBook.sol";
import {Views} from "./coordinator/Views.sol";

/// @title FLCoordinator
/// @notice The flchain coordinator: training tasks with a reward pool, trainer stakes, rounds with update
///         commitments, on-chain reputation, bounded slashing and Merkle pull payouts (see IFLCoordinator).
/// @dev Deployable composition of the modules. The admin (DEFAULT_ADMIN_ROLE) manages roles; PAUSER_ROLE may
///      pause everything except the exits (requestUnstake, withdrawStake, closeTask), so no funds get stuck.
contract FLCoordinator is TaskBook, Staking, Rounds, Payouts, Views, AccessControl {
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
    }

    /// @notice Resume normal operation.
    /// @dev PAUSER_ROLE only; reverts ExpectedPause when not paused.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @notice ERC-165: AccessControl's interfaces and IFLCoordinator.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IFLCoordinator).interfaceId || super.supportsInterface(interfaceId);
    }
}
