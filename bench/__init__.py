"""The evaluation harness: `flchain bench {accuracy,robustness,fairness,gas,overhead,all}`.

Every experiment runs simulated trainers in-process through the code the services run: the update codec
(`flchain.codec`), the round computation (`aggregator.pipeline.run_round`: filters, LossScore, ratings, payouts,
robust aggregation, outer step), the ml package (specs, data, partitions, `local_train`, `Evaluator`, attacks) and,
for gas and chain time, the real contracts on a local Anvil. Each experiment writes `<name>.json` (settings,
seeds, wall time, machine, results), `<name>.md` (tables) and PNG figures under the output directory.

- `settings`: the tiny / quick / full settings of every experiment (hyperparameters in one versioned place).
- `data`, `behaviours`, `federation`: the simulated federation (datasets, honest and dishonest trainers, rounds).
- `accuracy`, `robustness`, `fairness`, `gas`, `overhead`: one experiment each.
- `report`, `plots`: the JSON/Markdown envelope and the matplotlib figures.
- `cli`: the typer app `bench_app`.
"""
