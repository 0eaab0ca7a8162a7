"""The flchain trainer node: `flchain trainer run` (or `python -m trainer run`).

One round, as named steps (sequenced in `node.py`, each in its own module):

| step | module |
|---|---|
| settle_rewards: claim finalized rounds (report -> payout tree -> leaf -> claimMany) | `rewards.py` |
| ensure_registered: stake minStake (approving the token) when needed | `registration.py` |
| wait_for_round: currentRound, roundStatus, RoundOpened's base model CID | `rounds.py`, `flchain/chain/tasklog.py` |
| decide_resume: chain state + checkpoint -> train, commit or reveal the saved update, or nothing | `resume.py` |
| fetch_global_model: digest-checked against the chain, then decoded | `model.py` |
| produce_update: local training (the node's `produce` hook; simulations plug in others) | `update.py` |
| encode, save (update + salt), commit, wait for the reveal phase, upload, reveal | `training.py`, `publish.py` |

Around them: `settings.py` (FLCHAIN_TRAINER_* settings), `signer.py` (keystore, env key, keystore directory with
flock leases), `dataset.py` (data source and simulation shard), `spec.py` (the task's model spec),
`checkpoint.py` (atomic local state), `backoff.py` (retries through outages), `runtime.py` (stop token, log
fields), `progress.py` (rich status line), `setup.py` (building a node), `cli.py`.
"""
