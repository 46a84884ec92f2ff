"""A scikit-learn tree estimator as Treelite reads it, made to compute the same bits.

`treelite.sklearn.import_model` reads forests, extra trees, gradient boosting and
HistGradientBoosting. Two things stand between it and scikit-learn's own bits:

- a classifier forest's leaves: Treelite divides each leaf's class weights by their sum,
  while scikit-learn (≥ 1.4) keeps the fractions the tree stored, whose sum may be an ulp
  off 1; the imported leaves are set back to the stored fractions;
- a single DecisionTree, which Treelite does not read: it is imported as a forest of that
  one tree (a forest averages over one tree: the same value).

Estimators whose answers depend on more than the trees are refused with the reason: a
forest with `n_jobs` other than 1 adds its trees' answers in whatever order its threads
finish, so its own last bits vary from call to call. HistGradientBoosting with
categorical features is refused before compiling: its compiled scores were not
scikit-learn's bits on the check rows (which hold non-integer values in every column).
"""

from __future__ import annotations

from typing import Any

from modelhost.compile.sources import CompileError
from modelhost.frameworks.sklearn_trees import is_classifier, tree_kind


def treelite_model(model: Any) -> Any:
    """The Treelite model of `model`; `CompileError` saying why when it cannot be exact."""
    import treelite.sklearn

    kind = tree_kind(model)
    name = type(model).__name__
    if kind is None:
        raise CompileError(f"the compiled tier takes scikit-learn tree estimators, not {name}")
    if int(getattr(model, "n_outputs_", 1)) != 1:
        raise CompileError(f"{name} has {model.n_outputs_} outputs; the compiled tier takes one")
    if kind == "forest" and getattr(model, "n_jobs", None) not in (None, 1):
        raise CompileError(
            f"{name} has n_jobs={model.n_jobs}: scikit-learn sums its trees in the order its "
            "threads finish, so its answers' last bits vary; save it with n_jobs=None"
        )
    categorical = getattr(model, "is_categorical_", None) if kind == "hist" else None
    if categorical is not None and bool(categorical.any()):
        raise CompileError(
            f"{name} has categorical features: their compiled splits did not give "
            "scikit-learn's bits when checked"
        )
    forest = _as_forest(model) if kind == "single" else model
    imported = treelite.sklearn.import_model(forest)
    if kind in ("forest", "single") and is_classifier(model):
        _stored_fractions(imported, forest.estimators_)
    return imported


def _as_forest(tree: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    forest = RandomForestClassifier(1) if is_classifier(tree) else RandomForestRegressor(1)
    forest.estimators_ = [tree]
    forest.n_features_in_ = tree.n_features_in_
    forest.n_outputs_ = tree.n_outputs_
    if is_classifier(tree):
        forest.n_classes_ = tree.n_classes_
        forest.classes_ = tree.classes_
    return forest


def _stored_fractions(imported: Any, estimators: list[Any]) -> None:
    """Each leaf's class values as the tree stored them (see the module docstring)."""
    for index, estimator in enumerate(estimators):
        tree = imported.get_tree_accessor(index)
        begin = tree.get_field("leaf_vector_begin")
        end = tree.get_field("leaf_vector_end")
        leaves = tree.get_field("leaf_vector").copy()
        stored = estimator.tree_.value[:, 0, :]
        if len(begin) != len(stored):  # Treelite numbered the nodes another way
            raise CompileError("Treelite read a tree with another number of nodes")
        for node in (end > begin).nonzero()[0]:
            leaves[begin[node] : end[node]] = stored[node]
        tree.set_field("leaf_vector", leaves)
