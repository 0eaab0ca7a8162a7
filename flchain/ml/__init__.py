"""Model specs, parameters, datasets, partitioners, local training and evaluation.

One concept per module, imported directly (this package re-exports nothing, so `flchain.ml.data` and
`flchain.ml.partition` stay usable without importing torch):

- `specs`: `ModelSpec`, presets by name, canonical JSON and the on-chain spec hash, deterministic `build()`.
- `params`: torch module/state_dict <-> `dict[str, np.ndarray]`, flat vectors (`ParamLayout`), pseudo-gradients.
- `data`: `Dataset`, bundled digits, MNIST IDX files, .npz/CSV arrays, train/val/test split.
- `partition`: IID and Dirichlet label-skew partitions for simulations.
- `train`: `local_train`, `evaluate`, and the reusable `Evaluator` for many forward passes.
- `attacks`: red-team behaviours for simulations and benchmarks only.

Sign convention everywhere: `delta = theta_base - theta_local` (a pseudo-gradient).
"""
