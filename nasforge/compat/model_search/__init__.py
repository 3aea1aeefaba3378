"""Google Model Search's Python entry points, running on nasforge.

    from nasforge.compat.model_search import constants, single_trainer
    from nasforge.compat.model_search.data import csv_data

    trainer = single_trainer.SingleTrainer(
        data=csv_data.Provider(label_index=0, logits_dimension=2, record_defaults=[0, 0, 0, 0],
                               filename="train.csv"),
        spec=constants.DEFAULT_DNN)
    study = trainer.try_models(number_models=20, train_steps=1000, eval_steps=100, root_dir="/tmp/run",
                               batch_size=32, experiment_name="example", experiment_owner="me")
"""

from nasforge.compat.model_search import constants, single_trainer
from nasforge.compat.model_search.single_trainer import SingleTrainer

__all__ = ["SingleTrainer", "constants", "single_trainer"]
