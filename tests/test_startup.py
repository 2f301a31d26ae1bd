"""``import skdae`` is cheap: estimator modules load when first used.

A script that fits one estimator should not pay for the others' imports
(pandas, polars, dask, skl2onnx, the tabular engine...). Checked in fresh
interpreters, through ``sys.modules``; no timing is asserted.
"""

import json
import pickle
import subprocess
import sys

import pytest

import skdae

# Never imported by ``import skdae`` alone.
HEAVY = ["sklearn", "numba", "scipy", "narwhals", "pandas", "polars", "dask",
         "skl2onnx", "onnx", "skdae._autoencoder", "skdae._kernels",
         "skdae._tabular", "skdae._impute", "skdae._marginalized",
         "skdae._network", "skdae._classifier"]
# Not needed by a DenoisingAutoencoder (scikit-learn itself imports pandas,
# narwhals and scipy.stats when they are installed).
NOT_FOR_A_DAE = ["polars", "dask", "skl2onnx", "onnx", "skdae._tabular",
                 "skdae._impute", "skdae._marginalized", "skdae._network",
                 "skdae._classifier", "skdae._columns", "skdae._stacked"]


def _imported_after(code, names):
    script = (f"import json, sys\n{code}\n"
              f"print(json.dumps([n for n in {names!r} if n in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_skdae_imports_no_estimator_module():
    assert _imported_after("import skdae", HEAVY) == []


def test_a_denoising_autoencoder_fit_imports_only_what_it_uses():
    code = ("import numpy as np\nfrom skdae import DenoisingAutoencoder\n"
            "X = np.random.RandomState(0).uniform(size=(40, 5))\n"
            "DenoisingAutoencoder(3, max_iter=1).fit(X).transform(X)")
    assert _imported_after(code, NOT_FOR_A_DAE) == []


def test_public_names_dir_and_errors():
    assert sorted(skdae.__all__) == skdae.__all__
    assert set(skdae.__all__) <= set(dir(skdae))
    for name in skdae.__all__:
        cls = getattr(skdae, name)
        assert cls.__name__ == name and cls.__module__ == "skdae"
    with pytest.raises(AttributeError, match="no attribute 'NotAnEstimator'"):
        skdae.NotAnEstimator  # noqa: B018


def test_public_module_when_the_private_modules_are_imported_directly():
    # Pickles, joblib and skops files name skdae.<Class> even when only the
    # private modules were imported (as skdae.onnx and the stack do), never
    # through skdae's attributes.
    code = "".join(f"from {module} import {name}\n"
                   f"assert {name}.__module__ == 'skdae', {name}.__module__\n"
                   for name, module in skdae._MODULES.items())
    subprocess.run([sys.executable, "-c", code], check=True)


def test_subclasses_keep_their_own_module():
    class Mine(skdae.DenoisingAutoencoder):
        pass

    assert Mine.__module__ == __name__
    assert pickle.loads(pickle.dumps(skdae.DenoisingAutoencoder(3))).get_params(
    )["n_components"] == 3
