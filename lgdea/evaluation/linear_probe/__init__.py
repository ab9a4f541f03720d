"""Linear-probe (and fine-tuning) evaluation on classification datasets (docs/linear_probe.md).

The frozen image encoder's ``extract_image(images)['probe']`` features are cached once per
task; a :class:`~lgdea.models.heads.LinearProbeClassifier` is trained on them per training
fraction (selection of epoch / weight decay on the validation subset) and scored on the test
subset. ``mode='finetune'`` trains the image encoder end to end instead.
"""
from .api import (LINEAR_PROBE_DEFAULTS, MODE_KEYS, merge_results_json,
                  resolve_linear_probe_cfg, run_linear_probe, run_linear_probe_with_runner)
from .features import (FeatureTable, build_feature_table, extract_probe_features,
                       feature_cache_key, model_fingerprint)
from .metrics import (MEAN_LABEL_ACCURACY_KEY, classification_metrics, macro_auroc,
                      mean_label_accuracy, primary_metric, top1_accuracy)
from .tasks import ProbeTask, SubsetData, check_train_labels, load_subset, parse_task, pct_label
from .trainer import (ProbeSelection, finetune_classifier, finetune_scores, predict_scores,
                      train_linear_probe)

__all__ = [
    'LINEAR_PROBE_DEFAULTS', 'MODE_KEYS', 'merge_results_json', 'resolve_linear_probe_cfg',
    'run_linear_probe', 'run_linear_probe_with_runner', 'FeatureTable', 'build_feature_table',
    'extract_probe_features', 'feature_cache_key', 'model_fingerprint',
    'MEAN_LABEL_ACCURACY_KEY', 'classification_metrics', 'macro_auroc', 'mean_label_accuracy',
    'primary_metric', 'top1_accuracy', 'ProbeTask', 'SubsetData', 'check_train_labels',
    'load_subset', 'parse_task', 'pct_label', 'ProbeSelection', 'finetune_classifier',
    'finetune_scores', 'predict_scores', 'train_linear_probe'
]
