"""Real sample data shipped inside installed packages (no download)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_breast_cancer_csv"]


def write_breast_cancer_csv(path: str | Path) -> Path:
    """Write scikit-learn's bundled Wisconsin breast-cancer data (569 rows, 30 features) as CSV.

    Column names are snake_case (``mean_radius``) so they are easy to type in
    JSON requests; the label column ``diagnosis`` holds ``malignant``/``benign``.
    """
    import polars as pl
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    columns = [name.replace(" ", "_") for name in raw.feature_names]
    df = pl.DataFrame(raw.data, schema=columns, orient="row").with_columns(
        pl.Series("diagnosis", [str(raw.target_names[t]) for t in raw.target])
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(path)
    return path
