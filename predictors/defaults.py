"""Every default of the predictors, in one place.

The models are deliberately small, since a user has tens to hundreds of end-to-end measurements,
not thousands. They were checked (not tuned) on the CPU benchmark (``benchmarks/predictor_fidelity.py``:
fit on 100 subnets, test on the rest), where xgb, rf and ridge land within measurement noise of
each other; xgb is the default because it also serves accuracy targets well.
"""

from __future__ import annotations

#: the model ``lat fit`` uses when --model is not given
DEFAULT_MODEL = "xgb"

#: model names accepted by ``lat fit --model`` (and ``fit_arch_regressor``)
MODELS = ("lut", "xgb", "rf", "ridge", "mlp")

#: gradient-boosted trees (xgboost ``gbtree``), fitted on the log-ratio to a baseline
XGB_PARAMS = {
    "n_estimators": 300,
    "max_depth": 3,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 1.0,
    "reg_lambda": 1.0,
}

#: random forest through xgboost (one round of many parallel trees, learning rate 1)
RF_PARAMS = {
    "n_estimators": 300,  # parallel trees
    "max_depth": 6,
    "learning_rate": 1.0,
    "subsample": 0.8,
    "colsample_bynode": 0.6,
    "min_child_weight": 1.0,
    "reg_lambda": 1e-3,
}

#: mlp (accuracy only): once-for-all's accuracy predictor and its authors' training recipe (hidden
#: size, layers, Adam lr and weight decay; batch 256 is its ``build_acc_data_loader`` default). Its
#: code publishes no epoch count. 100 epochs (700 Adam steps on 1,600 training subnets) is where
#: the held-out Spearman levels off on a synthetic table of 800 training and 200 held-out subnets
#: with a known signal (0.963, 0.968, 0.972, 0.974 at 25, 50, 100, 200 epochs; tests/predictors/
#: test_mlp.py's table with 1 point of noise), at a fit time of seconds on a CPU.
MLP_PARAMS = {
    "hidden_size": 400,
    "n_layers": 3,
    "epochs": 100,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
}

#: ridge: the regularisation strength is chosen by leave-one-out among these
RIDGE_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)

#: few-shot transfer: the sample counts the issue asks about, and the default number of random
#: draws of the k samples when evaluating
FEWSHOT_KS = (5, 10, 20, 50)
FEWSHOT_DRAWS = 10
#: ridge strength of the few-shot mixing and residual models (strong: k may be 5)
FEWSHOT_ALPHA = 1.0

#: batch size above which predictions are computed in chunks (bounds memory, keeps speed)
PREDICT_CHUNK = 50_000

#: k-fold cross-validation recorded in a fitted predictor's metadata
CV_FOLDS = 5
