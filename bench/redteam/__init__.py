"""Dishonest trainer nodes for simulations (`flchain demo`, integration tests): never part of the trainer service.

The production trainer exposes one plug-in point for this, `TrainerNode.produce` (an `UpdateProducer`, local
training by default). This package supplies a dishonest producer and the entry that runs a node with it:

- `kinds`: the behaviours (sign-flip, scaled, gaussian-noise, label-flip, free-rider-zero, free-rider-stale,
  free-rider-global, copycat), built on `flchain.ml.attacks`.
- `producer`: `RedTeamProducer`, `attach_red_team(node, config)` and `RedTeamSettings` (FLCHAIN_REDTEAM_*).
- `python -m bench.redteam run …`: `flchain trainer run` with the trainer's flags and FLCHAIN_TRAINER_* settings,
  producing its updates the way FLCHAIN_REDTEAM_KIND says (announced loudly in the log).
"""
