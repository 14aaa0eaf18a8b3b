"""Write the example data sets in this folder (run once; the CSV files are committed).

    pip install scikit-learn statsmodels
    python examples/data/export_datasets.py

The examples themselves read only the CSV files, so they need neither package.
"""

from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    from sklearn.datasets import load_diabetes
    from statsmodels.datasets import sunspots

    diabetes = load_diabetes(scaled=False, as_frame=True).frame  # the raw, unscaled values
    diabetes.to_csv(HERE / "diabetes.csv", index=False, float_format="%.10g")
    spots = sunspots.load_pandas().data.rename(columns={"YEAR": "year", "SUNACTIVITY": "sunspots"})
    spots["year"] = spots["year"].astype(int)
    spots.to_csv(HERE / "sunspots.csv", index=False, float_format="%.10g")
    for name in ("diabetes.csv", "sunspots.csv"):
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
