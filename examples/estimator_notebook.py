# %% [markdown]
# # nasforge as a scikit-learn estimator
#
# A notebook in the "percent" format: open it in Jupyter or VS Code (each `# %%` is a cell) or run it as a
# script, `python examples/estimator_notebook.py`. `NASClassifier.fit` runs a whole architecture search, so the
# budgets here are tiny (2 trials of 2 epochs); raise `trials` and `epochs` for real data.
# More in docs/estimators.md.

# %%
import tempfile

from sklearn.datasets import load_wine
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import nasforge

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

# %% [markdown]
# ## Fit, predict, score
# `fit` searches dnn architectures on the training rows (20 % of them held out for validation), keeps the best
# trial's model in memory and throws the temporary trial store away.

# %%
clf = nasforge.NASClassifier(trials=2, epochs=2, seed=0)
clf.fit(X_train, y_train)
print("best validation score:", round(clf.best_score_, 3))
print("test accuracy:", round(clf.score(X_test, y_test), 3))
print("class probabilities of the first test row:", clf.predict_proba(X_test[:1]).round(3))

# %% [markdown]
# ## Inside scikit-learn's tools
# It is an ordinary estimator: `clone`, pipelines, cross-validation and grid search work on it. nasforge
# standardises the features itself; a pipeline step runs first like any other.

# %%
pipeline = make_pipeline(FunctionTransformer(lambda a: a[:, :10]), nasforge.NASClassifier(trials=2, epochs=2))
scores = cross_val_score(pipeline, X, y, cv=3)
print("3-fold accuracy:", scores.round(3))

# %% [markdown]
# ## Keeping the trials
# `storage=` keeps the search in a store of your own; the study is then open to every nasforge tool
# (`nasforge trials`, `nasforge dashboard`, `nasforge.load_study`).

# %%
with tempfile.TemporaryDirectory() as folder:
    storage = f"sqlite:///{folder}/wine.db"
    kept = nasforge.NASClassifier(trials=2, epochs=2, storage=storage).fit(X_train, y_train)
    study = nasforge.load_study(kept.study_name_, storage=storage)
    trials = study.trials_dataframe()[["number", "state", "valid_accuracy"]]
    print(trials)
    study.store.dispose()
