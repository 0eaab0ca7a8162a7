"""Create the keys docker-compose mounts: trainer keystores and the sponsor/aggregator env files.

    python scripts/compose_keys.py --trainers 3

- compose/keys/trainers/trainer-N.json: fresh accounts, encrypted with the password in compose/keys/password
  (the bootstrap step funds them on the development chain);
- compose/env/sponsor.env and compose/env/aggregator.env: keys of Anvil's public development accounts 0 and 1,
  which the compose chain funds at start. For a real chain, write these files with your own keys instead;
- compose/env/validator-N.env (N = 1..3) and compose/env/validators.env: keys of development accounts 5-7 for the
  three validator services, and their addresses with quorum 2 for the task the deployer creates;
- compose/env/postgres.env: a random password of the index database (POSTGRES_PASSWORD for the server,
  PGPASSWORD for the backend), kept across runs.
Nothing here is baked into an image; compose/keys and compose/env are git-ignored.
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from eth_account import Account

from flchain.chain.accounts import write_keystore
from flchain.devnet.accounts import dev_account

ROOT = Path(__file__).resolve().parent.parent / "compose"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainers", type=int, default=3)
    args = parser.parse_args()
    keys, env = ROOT / "keys", ROOT / "env"
    (keys / "trainers").mkdir(parents=True, exist_ok=True)
    env.mkdir(parents=True, exist_ok=True)
    password_file = keys / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24) + "\n")
        password_file.chmod(0o600)
    password = password_file.read_text().splitlines()[0]
    for i in range(1, args.trainers + 1):
        path = keys / "trainers" / f"trainer-{i}.json"
        if not path.exists():
            account = Account.create()
            write_keystore(account, path, password)
            path.chmod(0o644)  # readable by the container's non-root user; still encrypted
            print(f"trainer-{i}: {account.address}")
    (env / "sponsor.env").write_text(f"FLCHAIN_SPONSOR_KEY={dev_account(0).key.hex()}\n")
    (env / "aggregator.env").write_text(
        f"FLCHAIN_AGGREGATOR_KEY={dev_account(1).key.hex()}\nFLCHAIN_AGGREGATOR_ADDRESS={dev_account(1).address}\n"
    )
    validators = [dev_account(5 + i) for i in range(3)]
    for number, account in enumerate(validators, start=1):
        (env / f"validator-{number}.env").write_text(f"FLCHAIN_VALIDATOR_KEY={account.key.hex()}\n")
    addresses = " ".join(a.address for a in validators)
    (env / "validators.env").write_text(f"FLCHAIN_VALIDATOR_ADDRESSES={addresses}\nFLCHAIN_VALIDATOR_QUORUM=2\n")
    postgres_env = env / "postgres.env"
    if not postgres_env.exists():
        db_password = secrets.token_urlsafe(24)
        postgres_env.write_text(f"POSTGRES_PASSWORD={db_password}\nPGPASSWORD={db_password}\n")
        postgres_env.chmod(0o600)
    print(f"wrote {keys} and {env}")


if __name__ == "__main__":
    main()
