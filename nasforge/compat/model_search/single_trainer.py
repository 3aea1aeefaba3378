"""`SingleTrainer.try_models`: Model Search's entry point, running a nasforge study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nasforge.compat.model_search.constants import DEFAULT_DNN
from nasforge.core.errors import ConfigError


class SingleTrainer:
    def __init__(self, data: Any, spec: str = DEFAULT_DNN) -> None:
        from nasforge.core import registry

        name = Path(spec).stem if spec.endswith(".pbtxt") else spec
        if name not in registry.available("space"):
            raise ConfigError(f"spec {spec!r}: no such nasforge space ({', '.join(registry.available('space'))})")
        self.data = data
        self.space = name

    def try_models(self, number_models: int, train_steps: int, eval_steps: int, root_dir: str,
                   batch_size: int, experiment_name: str, experiment_owner: str = "", workers: int | None = None,
                   seed: int = 0) -> Any:
        """Search `number_models` models, each trained `train_steps` steps; returns the `Study`.

        Results live in `root_dir/model_search.db`, checkpoints and logs in `root_dir/<experiment_name>/`.
        Validation always uses the whole validation split, so `eval_steps` only has to be positive;
        early stopping (3 epochs without improvement) may end a trial before `train_steps`.
        Running the same call again resumes the experiment.
        """
        import nasforge

        if eval_steps < 1:
            raise ConfigError(f"eval_steps must be positive (got {eval_steps})")
        root = Path(root_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        common: dict[str, Any] = {"space": self.space, "strategy": "model_search", "trials": number_models,
                                  "steps": train_steps, "batch_size": batch_size, "study": experiment_name,
                                  "owner": experiment_owner, "storage": f"sqlite:///{root / 'model_search.db'}",
                                  "root": str(root), "workers": workers, "seed": seed}
        from nasforge.data.provider import Provider

        if isinstance(self.data, Provider):  # a user-written data.Provider subclass
            return nasforge.search(provider=self.data, **common)
        return nasforge.search(self.data.filename, **common, **self.data.search_options())
