"""Anvil's development accounts, derived from its public test mnemonic.

These keys are public knowledge and only ever fund local chains (tests, `flchain up`, the demo). Real deployments
load keys from a keystore file or the environment (`flchain.chain.accounts`).
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

from flchain.devnet.anvil import ANVIL_MNEMONIC

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """The `index`-th account Anvil funds at start (m/44'/60'/0'/0/index)."""
    account: LocalAccount = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return account
