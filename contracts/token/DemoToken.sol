// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title DemoToken
/// @notice A plain mintable ERC-20 (18 decimals) for local runs and tests: rewards and stakes of demo tasks.
/// @dev Only the owner mints; no supply cap, no other privileges.
contract DemoToken is ERC20, Ownable {
    /// @param name_ Token name.
    /// @param symbol_ Token symbol.
    /// @param initialOwner The account allowed to mint.
    constructor(string memory name_, string memory symbol_, address initialOwner)
        ERC20(name_, symbol_)
        Ownable(initialOwner)
    {}

    /// @notice Create `amount` tokens for `to`.
    /// @dev Owner only (OwnableUnauthorizedAccount).
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
